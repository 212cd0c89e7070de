"""Publishing an ETL output as a new version of DIR (interest_core/data_versions.py has the layout and the rules).

prepare() cleans what a killed ETL left and opens a new version directory with a writer record; publish() removes
the record, replaces the pointer (the one step that makes the version current) and deletes the versions nobody
uses any more. A version whose quarantine threshold failed is kept with `_FAILED.json`: its quarantine is the
evidence. No step renames a directory, so DIR may as well be a URI of shared storage (interest_core/storage.py).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from interest_core import storage
from interest_core.data_versions import (CURRENT, SUCCESS, WRITER, current_version, finished, live_references,
                                         new_version_name, point_to, versions)

FAILED = "_FAILED.json"


def spark_path(location: str | Path) -> str:
    """The path Spark writes a location through (its Hadoop filesystems): s3:// as s3a:// (the hadoop-aws
    connector the cluster image adds; untested on machines without it), gs:// and hdfs:// as they are (gs:// needs
    the GCS connector in the image), a local path as it is."""
    s = str(location)
    return "s3a://" + s[len("s3://"):] if storage.scheme(s) == "s3" else s


class Target:
    """A place inside the version being written: str() is what Spark writes to (spark_path), .location the local
    path or URI pyarrow.fs reads and writes (manifest, markers, row counts)."""

    def __init__(self, location: str | Path):
        self.location = location

    def __truediv__(self, name: str) -> "Target":
        return Target(storage.join(self.location, name))

    def __str__(self) -> str:
        return spark_path(self.location)

    def parquet_rows(self) -> int:
        """Row count from the Parquet footers only (no Spark job, nothing event-sized on the driver)."""
        import pyarrow.parquet as pq

        fs, paths = storage.files(self.location, ".parquet")
        return sum(pq.read_metadata(p, filesystem=fs).num_rows for p in paths)


def prepare(out: str | Path) -> str | Path:
    """A new, empty version directory under out (a Path, or a URI for a remote out), after removing (and
    reporting) what killed ETLs left."""
    out = storage.normalize(out)
    if storage.exists(storage.join(out, SUCCESS)) and not storage.exists(storage.join(out, CURRENT)):
        raise ValueError(f"--output {out} holds data in the unversioned layout of an earlier interest-trainer; "
                         f"delete it or choose another --output")
    if not storage.is_remote(out):
        if out.exists() and not out.is_dir():
            raise ValueError(f"--output {out} is a file; give a directory")
        out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    version = storage.join(out, new_version_name())
    if not storage.is_remote(out):
        version.mkdir()
    storage.write_text(storage.join(version, WRITER), json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    return version


def publish(out: str | Path, version: str | Path) -> list[str]:
    """Makes version current; returns one line per older version removed or kept (and why)."""
    storage.delete(storage.join(version, WRITER))
    point_to(out, version)
    return prune(out)


def mark_failed(version: str | Path, reason: str) -> None:
    storage.delete(storage.join(version, WRITER))
    storage.write_text(storage.join(version, FAILED), json.dumps({"reason": reason}, indent=1))


def prune(out: str | Path) -> list[str]:
    """Deletes every finished version that is not current and that no existing run directory refers to."""
    current, lines = current_version(out), []
    for v in versions(out):
        if v == current or not finished(v):
            continue
        users = live_references(v)
        name = storage.basename(v)
        if users:
            lines.append(f"kept {name}: runs still use it ({', '.join(users[:3])}{' ...' if len(users) > 3 else ''})")
        else:
            storage.delete(v)
            lines.append(f"removed {name}: not current and no run uses it")
    return lines


def _writer_alive(version: str | Path) -> bool:
    """Whether the ETL that opened an unfinished version may still be writing it."""
    try:
        w = json.loads(storage.read_text(storage.join(version, WRITER)))
    except (OSError, ValueError):
        return False
    if w.get("host") != socket.gethostname():
        return True  # another machine's process: cannot tell, so leave it
    try:
        os.kill(int(w["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(out: str | Path) -> None:
    """Unfinished versions of killed ETLs, and the temporary directories of the unversioned layout, go; a version
    another live ETL is writing or a failed one (its quarantine is evidence) stays, reported."""
    for v in versions(out):
        if finished(v):
            continue
        if storage.exists(storage.join(v, FAILED)):
            print(f"etl: {v} is a failed run's output, kept for its quarantine ({FAILED} says why); delete it "
                  f"when done", flush=True)
        elif _writer_alive(v):
            print(f"etl: another ETL is writing {v}; left alone", flush=True)
        else:
            storage.delete(v)
            print(f"etl: removed {storage.basename(v)}, an unfinished version a killed ETL left", flush=True)
    if storage.is_remote(out):
        return
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"etl: removed {tmp}, a temporary directory a killed ETL left", flush=True)
