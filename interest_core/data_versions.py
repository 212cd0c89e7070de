"""Versioned data directories: how the ETL publishes, how readers find the current version, who still uses one.

An ETL output DIR holds one directory per run of the ETL and a pointer naming the current one:

  DIR/v-20261202T151500Z-1a2b3c/   a complete data directory (contract.py's layout, `_SUCCESS` inside)
  DIR/_CURRENT                      {"version": "v-..."}: written last, by replacing one small file

A reader given DIR reads the version `_CURRENT` names; given a version directory, that version. A crash at any
point leaves the previous pointer, so the previous complete version stays readable throughout; no rename of a
directory is needed, so the same steps work on object stores: DIR may be a URI (s3://, gs://, hdfs://, file://;
storage.py), where the pointer is one PUT, atomic there as os.replace is locally. A reader refuses a version
without `_SUCCESS` (require_finished: in contract.load_manifest locally, in local_data_dir before it copies a remote
one). A training run
records the version it read (run.json `data_dir`) and registers itself in `VERSION/_refs/`; a later ETL deletes a
version only when it is not current and no run directory that still exists refers to it, and removes what a killed
ETL left.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

from interest_core import storage

CURRENT = "_CURRENT"
PREFIX = "v-"
REFS = "_refs"
SUCCESS = "_SUCCESS"
WRITER = "_WRITER.json"  # the ETL writing an unfinished version: host and pid


class DataDirError(ValueError):
    """The data directory is not a finished ETL output this version can read."""


def new_version_name() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"


def current_version(out: str | Path) -> str | Path | None:
    """The version DIR/_CURRENT names, None when DIR has no pointer."""
    out = storage.normalize(out)
    pointer = storage.join(out, CURRENT)
    if not storage.exists(pointer):
        return None
    return storage.join(out, json.loads(storage.read_text(pointer))["version"])


def resolve_data_dir(path: str | Path) -> str | Path:
    """The data directory to read: DIR's current version, or PATH itself (a version, or any finished ETL output).
    A local one as a Path, a remote one as its URI."""
    version = current_version(path)
    return version if version is not None else storage.normalize(path)


def local_data_dir(version: str | Path) -> Path:
    """A resolved data version as a local directory: a remote one is checked finished (require_finished) and read
    through a local copy (storage.immutable_copy: a published version never changes); a local one is itself
    (contract.load_manifest checks it)."""
    if not storage.is_remote(version):
        return storage.local(version)
    require_finished(version)
    return storage.immutable_copy(version, "data")


def require_finished(data_dir: str | Path) -> None:
    """Refuses a data directory without `_SUCCESS` (an ETL that did not finish there), naming the ETL output to
    write again: the version's parent for a version, else the directory itself."""
    if finished(data_dir):
        return
    if storage.basename(data_dir).startswith(PREFIX):
        out = storage.parent(data_dir)
        why = f" (a half-written version, or {out}/{CURRENT} names a version it never finished)"
    else:
        out, why = data_dir, ""
    raise DataDirError(f"{data_dir}: no {SUCCESS} marker; the ETL did not finish there{why}. Run `interest etl ... "
                       f"--output {out}` again, or give --data a finished version")


def readable_data_dir(path: str | Path) -> Path:
    """The local directory to read for a data location (DIR, a version, a URI of either)."""
    return local_data_dir(resolve_data_dir(path))


def point_to(out: str | Path, version: str | Path) -> None:
    """Publishes version as DIR's current one: one small object, written whole (storage.write_text)."""
    storage.write_text(storage.join(storage.normalize(out), CURRENT), json.dumps(
        {"version": storage.basename(version),
         "published": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}))


def versions(out: str | Path) -> list[str | Path]:
    out = storage.normalize(out)
    return [storage.join(out, n) for n in storage.children(out)
            if n.startswith(PREFIX) and storage.is_dir(storage.join(out, n))]


def finished(version: str | Path) -> bool:
    return storage.exists(storage.join(version, SUCCESS))


def add_reference(version: str | Path, run_dir: str | Path) -> None:
    """Records that run_dir trains on (and later evaluates and exports from) this data version."""
    run = str(storage.normalize(run_dir))
    if not storage.is_remote(version):
        (Path(version) / REFS).mkdir(exist_ok=True)
    storage.write_text(storage.join(version, REFS, f"{hashlib.sha256(run.encode()).hexdigest()[:16]}.json"),
                       json.dumps({"run_dir": run}))


def live_references(version: str | Path) -> list[str]:
    """The run directories that refer to this version and still exist."""
    out = []
    refs = storage.join(version, REFS)
    for name in storage.children(refs):
        if name.endswith(".json"):
            run = json.loads(storage.read_text(storage.join(refs, name)))["run_dir"]
            if storage.exists(run):
                out.append(run)
    return out
