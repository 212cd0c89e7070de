"""The Ray instance that a command starts or joins (`interest train`, `interest export`) is the only one it talks to.

Ray's helpers that look their cluster up with no address (the State API behind Ray Train's PlacementGroupCleaner and
TrainStateActor threads, Ray Data's hang detector) read RAY_ADDRESS, else scan the machine for GCS processes: with a
second command's instance on the machine that scan fails ("Found multiple active Ray instances") and the helper's
thread dies. So RAY_ADDRESS names the command's own instance in every worker process of it (a worker process setup
hook, `ray_train.logs.ray_init_kwargs`) and in the driver while the instance runs (`own_instance`). The same holds
for a cluster the command joins (`--address`, or RAY_ADDRESS in a Ray job) on a machine where another instance runs.

INTEREST_DEBUG_THREADS=DIR (a debugging aid): each worker process of such an instance writes the names of its live
threads to DIR/PID.json every second ({"pid", "at", "threads"}), e.g. to see that Ray's helper threads live on.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator

DEBUG_THREADS_ENV = "INTEREST_DEBUG_THREADS"
ADDRESS_ENV = "RAY_ADDRESS"


def setup_worker() -> None:
    """Ray's worker process setup hook of a local instance (runs first in each of its worker processes)."""
    import ray

    os.environ[ADDRESS_ENV] = ray.get_runtime_context().gcs_address
    if os.environ.get(DEBUG_THREADS_ENV):
        threading.Thread(target=_write_threads, args=(Path(os.environ[DEBUG_THREADS_ENV]),),
                         name="interest-debug-threads", daemon=True).start()


# What ray_init_kwargs passes as runtime_env["worker_process_setup_hook"] (Ray imports it in each worker).
SETUP_HOOK = f"{__name__}.{setup_worker.__name__}"


@contextlib.contextmanager
def own_instance(started: bool) -> Iterator[None]:
    """Around a command's work on the Ray instance it connected to: RAY_ADDRESS names it meanwhile, and as it was
    afterwards. started: this process started it, and it is shut down at the end (a later stage of the same process,
    e.g. in `interest pipeline`, starts its own); a joined instance is left running."""
    import ray

    before = os.environ.get(ADDRESS_ENV)
    os.environ[ADDRESS_ENV] = ray.get_runtime_context().gcs_address
    try:
        yield
    finally:
        if started:
            ray.shutdown()
        if before is None:
            os.environ.pop(ADDRESS_ENV, None)
        else:
            os.environ[ADDRESS_ENV] = before


def _write_threads(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{os.getpid()}.json"
    while True:
        record = {"pid": os.getpid(), "at": time.time(), "threads": sorted(t.name for t in threading.enumerate())}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)  # a reader never sees half a file
        time.sleep(1.0)
