"""Publishing an ETL output as a new version of DIR (interest_core/data_versions.py has the layout and the rules).

prepare() cleans what a killed ETL left and opens a new version directory with a writer record; publish() removes
the record, replaces the pointer (the one step that makes the version current) and deletes the versions nobody
uses any more. A version whose quarantine threshold failed is kept with `_FAILED.json`: its quarantine is the
evidence. No step renames a directory.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from interest_core.data_versions import (CURRENT, WRITER, current_version, live_references, new_version_name,
                                         point_to, versions)

FAILED = "_FAILED.json"


def prepare(out: Path) -> Path:
    """A new, empty version directory under out, after removing (and reporting) what killed ETLs left."""
    if (out / "_SUCCESS").exists() and not (out / CURRENT).exists():
        raise ValueError(f"--output {out} holds data in the unversioned layout of an earlier interest-trainer; "
                         f"delete it or choose another --output")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    version = out / new_version_name()
    version.mkdir()
    (version / WRITER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    return version


def publish(out: Path, version: Path) -> list[str]:
    """Makes version current; returns one line per older version removed or kept (and why)."""
    (version / WRITER).unlink(missing_ok=True)
    point_to(out, version)
    return prune(out)


def mark_failed(version: Path, reason: str) -> None:
    (version / WRITER).unlink(missing_ok=True)
    (version / FAILED).write_text(json.dumps({"reason": reason}, indent=1))


def prune(out: Path) -> list[str]:
    """Deletes every finished version that is not current and that no existing run directory refers to."""
    current, lines = current_version(out), []
    for v in versions(out):
        if v == current or not (v / "_SUCCESS").exists():
            continue
        users = live_references(v)
        if users:
            lines.append(f"kept {v.name}: runs still use it ({', '.join(users[:3])}{' ...' if len(users) > 3 else ''})")
        else:
            shutil.rmtree(v)
            lines.append(f"removed {v.name}: not current and no run uses it")
    return lines


def _writer_alive(version: Path) -> bool:
    """Whether the ETL that opened an unfinished version may still be writing it."""
    try:
        w = json.loads((version / WRITER).read_text())
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


def _remove_leftovers(out: Path) -> None:
    """Unfinished versions of killed ETLs, and the temporary directories of the unversioned layout, go; a version
    another live ETL is writing or a failed one (its quarantine is evidence) stays, reported."""
    for v in versions(out):
        if (v / "_SUCCESS").exists():
            continue
        if (v / FAILED).exists():
            print(f"etl: {v} is a failed run's output, kept for its quarantine ({FAILED} says why); delete it "
                  f"when done", flush=True)
        elif _writer_alive(v):
            print(f"etl: another ETL is writing {v}; left alone", flush=True)
        else:
            shutil.rmtree(v)
            print(f"etl: removed {v.name}, an unfinished version a killed ETL left", flush=True)
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"etl: removed {tmp}, a temporary directory a killed ETL left", flush=True)
