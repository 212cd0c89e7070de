import os
import tempfile
import time

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
# MLflow 3 refuses a file store unless told; the tests' tracking URIs are files, and the training workers that log
# to them inherit the environment the session's Ray instance starts with.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

# Temporary files the project itself creates start with this (checkpoint staging: interest-ckpt-*).
PROJECT_TMP_PREFIXES = ("interest", ".interest")


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import get_spark, stop_jvm

    session = get_spark("interest-tests", shuffle_partitions=2, driver_memory="2g", master="local[2]")
    # Adaptive query execution re-plans every query at each shuffle: worth it on real data, a quarter of the
    # time of the tests' tiny ETLs (13.8 s -> 10 s warm, 15,000 events), and it changes plans only, never results.
    # The ETLs that tests run through the CLI in a process of their own (the demo, the killed and out-of-memory
    # ETLs, the cluster templates) keep the shipped setting.
    session.conf.set("spark.sql.adaptive.enabled", "false")
    yield session
    stop_jvm()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for every in-process training of the session (started the way `interest train`
    starts its own, with logical CPUs to spare); train.run joins it instead of starting and stopping one per run."""
    import ray

    from interest_core.config import load_config
    from ray_train.train import init_ray

    init_ray(load_config("tiny-cpu", ["train.ray_num_cpus=8"]), None)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def shards(spark, tmp_path_factory):
    """A tiny ETL output (500 users, 15,000 synthetic events, tiny-cpu), its published version's directory: what the
    training tests (tests/test_trainer.py, tests/test_object_storage.py) train on."""
    import argparse

    from interest.synthetic import generate
    from interest_core.config import load_config
    from interest_core.data_versions import resolve_data_dir
    from spark_jobs.etl import run_etl

    root = tmp_path_factory.mktemp("trainer")
    generate(root / "synth", users=500, items=300, days=40, events=15_000, seed=3)
    args = argparse.Namespace(input=str(root / "synth"), format="synthetic", output=str(root / "data"), items=None,
                              column_map=None, ts_unit="auto", sep=None, hmac_key_file=None,
                              allow_insecure_demo_key=True)
    run_etl(spark, args, load_config("tiny-cpu"))
    return resolve_data_dir(root / "data")


def pytest_sessionstart(session):
    session.config._tmp_before = set(os.listdir(tempfile.gettempdir()))


def _leftovers(session) -> list[str]:
    """Processes this test session started that still run, and the project's files it left in the temp dir."""
    import psutil

    from spark_jobs.session import stop_jvm

    stop_jvm()  # an in-process ETL outside the fixture keeps PySpark's JVM until the interpreter exits
    basetemp = str(session.config._tmp_path_factory.getbasetemp()) if hasattr(session.config, "_tmp_path_factory") \
        else None
    found: list[str] = []
    # ray.shutdown() and a stopped JVM take a moment to go (tests/test_leftovers.py, whose leak never goes, waits less)
    deadline = time.time() + float(os.environ.get("INTEREST_LEFTOVER_GRACE_S", "15"))
    while True:
        me = psutil.Process()
        procs = {p.pid: p for p in me.children(recursive=True)}
        if basetemp:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if p.pid != me.pid and any(basetemp in a for a in (p.info["cmdline"] or [])):
                    procs[p.pid] = p
        alive = []
        for p in procs.values():
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"process {p.pid}: {' '.join(p.cmdline())[:200]}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.time() > deadline:
            break
        time.sleep(1)
    found += alive
    new = set(os.listdir(tempfile.gettempdir())) - session.config._tmp_before
    found += [f"file {os.path.join(tempfile.gettempdir(), n)}" for n in sorted(new)
              if n.startswith(PROJECT_TMP_PREFIXES)]
    return found


def pytest_sessionfinish(session, exitstatus):
    """The final check: a test session leaves no Ray, Spark or Java process running and none of the project's
    files in the temp dir. Fails the session (exit 1) naming each."""
    found = _leftovers(session)
    if found:
        print("\nleft behind by the test session:\n  " + "\n  ".join(found))
        session.exitstatus = 1
