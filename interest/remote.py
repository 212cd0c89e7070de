"""Runs and exports on shared storage for the commands that read and write them as local directories.

`interest evaluate|report|export|recommend` accept URIs (s3://, gs://, hdfs://, file://; interest_core/storage.py)
for their run, model and output directories: each remote one is worked on in a local copy (storage.WorkingCopy)
that is fetched first (a run without its checkpoints, which these commands do not read) and, where the command
writes, uploaded after it succeeded: only the files it added or changed. `interest train` writes its run to a URI
itself (Ray Train's storage_path), and the data (--data) is read by version (interest_core/data_versions.py).
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager

from interest_core import storage

# command -> (argument, what the command does with it): "read" fetches; "update" fetches, then uploads what changed;
# "write" starts empty and uploads all it wrote
DIRS = {
    "evaluate": (("run", "update"), ("latent", "read"), ("compare", "read")),
    "report": (("run", "update"),),
    "export": (("run", "update"), ("latent", "read"), ("output", "write")),
    "recommend": (("model", "read"),),
}
SKIP = ("checkpoint_",)  # what a run holds that these commands never read (Ray Train's checkpoints and state)
LAST = ("run.json", "metrics.json", "export.json")  # the files readers look for, uploaded after the rest


@contextmanager
def local_dirs(args: argparse.Namespace):
    """Replaces the command's remote directory arguments by local copies for the duration; yields the function
    that uploads what the command wrote (call it when the command succeeded)."""
    saves = []
    for name, mode in DIRS.get(args.command, ()):
        value = getattr(args, name, None)
        values = value if isinstance(value, list) else [value]
        local = []
        for v in values:
            if v is None or not storage.is_remote(v):
                local.append(v)
                continue
            copy = storage.WorkingCopy(storage.normalize(v), skip=SKIP)
            local.append(str(copy.open(fetch=mode != "write")))
            if mode != "read":
                saves.append(copy)
        setattr(args, name, local if isinstance(value, list) else local[0])

    def upload() -> None:
        for copy in saves:
            n = len(copy.save(last=LAST))
            print(f"interest {args.command}: {n} file{'s' * (n != 1)} uploaded to {copy.location}", flush=True)

    yield upload
