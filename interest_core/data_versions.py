"""Versioned data directories: how the ETL publishes, how readers find the current version, who still uses one.

An ETL output DIR holds one directory per run of the ETL and a pointer naming the current one:

  DIR/v-20261202T151500Z-1a2b3c/   a complete data directory (contract.py's layout, `_SUCCESS` inside)
  DIR/_CURRENT                      {"version": "v-..."}: written last, by replacing one small file

A reader given DIR reads the version `_CURRENT` names; given a version directory, that version. A crash at any
point leaves the previous pointer, so the previous complete version stays readable throughout; no rename of a
directory is needed, so the same steps work on object stores. A training run records the version it read (run.json
`data_dir`) and registers itself in `VERSION/_refs/`; a later ETL deletes a version only when it is not current and
no run directory that still exists refers to it, and removes what a killed ETL left.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from pathlib import Path

CURRENT = "_CURRENT"
PREFIX = "v-"
REFS = "_refs"
WRITER = "_WRITER.json"  # the ETL writing an unfinished version: host and pid


def new_version_name() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"


def current_version(out: str | Path) -> Path | None:
    """The version DIR/_CURRENT names, None when DIR has no pointer."""
    pointer = Path(out) / CURRENT
    if not pointer.exists():
        return None
    return Path(out) / json.loads(pointer.read_text())["version"]


def resolve_data_dir(path: str | Path) -> Path:
    """The data directory to read: DIR's current version, or PATH itself (a version, or any finished ETL output)."""
    version = current_version(path)
    return version if version is not None else Path(path)


def point_to(out: str | Path, version: Path) -> None:
    """Publishes version as DIR's current one: one small file, replaced whole."""
    out = Path(out)
    tmp = out / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"version": version.name,
                               "published": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}))
    os.replace(tmp, out / CURRENT)


def versions(out: str | Path) -> list[Path]:
    return sorted(p for p in Path(out).glob(f"{PREFIX}*") if p.is_dir())


def add_reference(version: str | Path, run_dir: str | Path) -> None:
    """Records that run_dir trains on (and later evaluates and exports from) this data version."""
    refs = Path(version) / REFS
    refs.mkdir(exist_ok=True)
    run = str(Path(run_dir).resolve())
    (refs / f"{hashlib.sha256(run.encode()).hexdigest()[:16]}.json").write_text(json.dumps({"run_dir": run}))


def live_references(version: str | Path) -> list[str]:
    """The run directories that refer to this version and still exist."""
    out = []
    for ref in sorted((Path(version) / REFS).glob("*.json")):
        run = json.loads(ref.read_text())["run_dir"]
        if Path(run).exists():
            out.append(run)
    return out
