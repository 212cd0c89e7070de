"""Checkpoint completeness: every rank seals the files it wrote with a marker holding their SHA-256, written last.

Ray Train keeps its own list of reported checkpoints, but a crash while a checkpoint is written or uploaded leaves
a directory that holds some files and not others. A checkpoint is complete when, for every rank of the world that
wrote it, `COMPLETE.rank<r>.json` exists and each file it lists has its recorded size and digest. Resuming and the
driver's checks read complete checkpoints only; a resumed run falls back to the latest complete one.

Checkpoints are staged in the node's temporary directory under a name that carries the run and the rank, so the
worker that replaces a killed one (and the driver when the run ends) removes what the killed one left.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MARKER = "COMPLETE.rank{rank}.json"


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def seal(directory: str | Path, rank: int, world: int) -> None:
    """Writes rank's marker over every file in directory (the files this rank wrote), last."""
    d = Path(directory)
    files = {str(p.relative_to(d)): {"bytes": p.stat().st_size, "sha256": _digest(p)}
             for p in sorted(d.rglob("*")) if p.is_file() and not p.name.startswith("COMPLETE.")}
    tmp = d / f".{MARKER.format(rank=rank)}.tmp"
    tmp.write_text(json.dumps({"rank": rank, "world": world, "files": files}, indent=1))
    os.replace(tmp, d / MARKER.format(rank=rank))


def problem(directory: str | Path) -> str | None:
    """None when the checkpoint is complete, else what is missing or damaged (for the resume message)."""
    d = Path(directory)
    first = d / MARKER.format(rank=0)
    if not first.exists():
        return f"no {first.name}"
    world = json.loads(first.read_text())["world"]
    for rank in range(world):
        marker = d / MARKER.format(rank=rank)
        if not marker.exists():
            return f"no {marker.name}"
        for name, want in json.loads(marker.read_text())["files"].items():
            p = d / name
            if not p.exists():
                return f"{name} is missing"
            if p.stat().st_size != want["bytes"] or _digest(p) != want["sha256"]:
                return f"{name} does not match its checksum"
    return None


def step_of(directory: str | Path) -> int:
    """The optimizer step a checkpoint was taken at (meta.json), -1 when unreadable."""
    try:
        return int(json.loads((Path(directory) / "meta.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """RUN's complete checkpoint directories, oldest step first."""
    found = [p for p in Path(run_dir).glob("checkpoint_*") if p.is_dir() and problem(p) is None]
    return sorted(found, key=lambda p: (step_of(p), p.name))


def latest_complete(run_dir: str | Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def staging_prefix(run_dir: str | Path, rank: int | None) -> str:
    run = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return f"interest-ckpt-{run}-" + (f"r{rank}-" if rank is not None else "")


def new_staging(run_dir: str | Path, rank: int) -> str:
    """A fresh local directory where rank writes a checkpoint before Ray copies it into the run."""
    return tempfile.mkdtemp(prefix=staging_prefix(run_dir, rank))


def clear_staging(run_dir: str | Path, rank: int | None = None) -> None:
    """Removes this run's staging directories on this node (of one rank, or all): a worker killed while staging
    cannot clean up after itself, so its successor (and the driver at the end) do."""
    for d in Path(tempfile.gettempdir()).glob(staging_prefix(run_dir, rank) + "*"):
        shutil.rmtree(d, ignore_errors=True)
