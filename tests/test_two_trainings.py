"""Two `interest train` commands at once on one machine, as a user with two terminals runs them: each keeps to the
local Ray instance it started (ray_train/local_instance.py), its driver, workers and Ray's own helper threads."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ray_train.local_instance import DEBUG_THREADS_ENV
from helpers import chatter

pytestmark = pytest.mark.slow

CLEANER = "PlacementGroupCleanerMonitor"  # Ray Train's thread that removes a dead controller's placement group
CLASH = "Found multiple active Ray instances"
# After a cleaner thread starts, its first controller check (once a second) looks its cluster up; seen alive this
# long after both runs' cleaners started, it has passed several lookups with the other instance on the machine. (A
# cleaner ends with its run's training, before the command exits: 10 s was longer than two short runs overlap.)
SETTLED_S = 5.0


def _cleaner_times(dump_dir: Path) -> list[float]:
    """When the worker processes of this run's instance last wrote their threads (INTEREST_DEBUG_THREADS files, one
    per process, rewritten every second) with the cleaner thread among them."""
    times = []
    for f in dump_dir.glob("*.json"):
        try:
            record = json.loads(f.read_text())
        except (OSError, ValueError):  # replaced while read
            continue
        if CLEANER in record["threads"]:
            times.append(record["at"])
    return times


def _ray_logs(pid: int, since: float) -> str:
    """The text of the logs of the Ray session that the driver of this pid started (after `since`: an older session of
    a reused pid aside)."""
    from ray._common.utils import get_default_ray_temp_dir

    sessions = [d for d in Path(get_default_ray_temp_dir()).glob(f"session_*_{pid}") if d.stat().st_mtime >= since]
    assert len(sessions) == 1, f"no single Ray session of driver {pid}: {sessions}"
    files = [f for f in (sessions[0] / "logs").rglob("*") if f.is_file()]
    assert files, f"no log files under {sessions[0]}"
    return "\n".join(f.read_text(errors="replace") for f in files)


def test_two_trainings_at_once_keep_each_to_their_own_ray_instance(shards, tmp_path):
    interest = str(Path(sys.executable).parent / "interest")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # each starts its own local instance
    runs, t0 = {}, time.time()
    for name in ("a", "b"):
        dump = tmp_path / f"threads_{name}"
        cmd = [interest, "train", "--data", str(shards), "--output", str(tmp_path / name), "--config", "tiny-cpu",
               "--workers", "1", "--epochs", "3"]  # 60 steps: the trainings overlap well past SETTLED_S
        console = tmp_path / f"{name}.console"  # a file, not a pipe: nothing blocks on a full pipe meanwhile
        with open(console, "w") as out:
            proc = subprocess.Popen(cmd, env=env | {DEBUG_THREADS_ENV: str(dump)}, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        runs[name] = {"dump": dump, "console": console, "proc": proc}
    seen = {name: set() for name in runs}  # when each run's cleaner thread was seen alive
    ended = None  # when the first of the two commands ended
    deadline = time.time() + 1200
    try:
        while any(r["proc"].poll() is None for r in runs.values()) and time.time() < deadline:
            if ended is None and any(r["proc"].poll() is not None for r in runs.values()):
                ended = time.time()
            for name, r in runs.items():
                seen[name] |= set(_cleaner_times(r["dump"]))
            time.sleep(0.5)
        ended = ended or time.time()
    finally:
        for r in runs.values():
            if r["proc"].poll() is None:
                os.killpg(r["proc"].pid, signal.SIGKILL)
                r["proc"].wait()
    outputs = {name: r["console"].read_text(errors="replace") for name, r in runs.items()}
    for name, r in runs.items():
        assert r["proc"].returncode == 0, f"run {name}:\n{outputs[name][-3000:]}"
        assert (tmp_path / name / "run.json").exists()
    assert all(seen.values()), f"a run's cleaner thread was never seen alive: {seen}"
    both_started = max(min(t) for t in seen.values())
    assert ended - both_started > SETTLED_S, "the two trainings did not overlap long enough to tell"
    for name, times in seen.items():  # alive SETTLED_S after both started, and both commands still running
        assert any(both_started + SETTLED_S <= t <= ended for t in times), \
            f"run {name}: the cleaner thread died (last seen alive {max(times) - both_started:.1f}s after both runs' " \
            f"cleaners started, the first command ended {ended - both_started:.1f}s after)"
    for name, r in runs.items():
        assert "Traceback" not in outputs[name], f"run {name}:\n{outputs[name][-3000:]}"
        assert CLASH not in outputs[name], f"run {name}:\n{outputs[name][-3000:]}"
        # `interest train` as a user starts it (its own Ray instance, Ray Train, DeepSpeed): a quiet console
        assert "[interest] step" in outputs[name] and not chatter(outputs[name]), f"run {name}:\n{outputs[name]}"
        assert CLASH not in _ray_logs(r["proc"].pid, t0), f"run {name}: Ray's logs hold '{CLASH}'"
