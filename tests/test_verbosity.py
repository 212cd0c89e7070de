"""Quiet by default, --verbose for the libraries' logs: the switch, and what it sets for Ray and Spark."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interest_core.verbosity import VERBOSE_ENV, verbose

REPO = Path(__file__).resolve().parent.parent


def _unset(monkeypatch, name):
    """Absent for the test and absent again after it, even if the code under test sets it."""
    monkeypatch.setenv(name, "")
    monkeypatch.delenv(name)


def test_cli_flag_sets_the_environment_that_workers_inherit(monkeypatch, capsys):
    from interest.cli import main

    _unset(monkeypatch, VERBOSE_ENV)
    assert main(["plan", "--config", "tiny-cpu", "--num-items", "500"]) == 0 and not verbose()
    assert main(["--verbose", "plan", "--config", "tiny-cpu", "--num-items", "500"]) == 0 and verbose()
    capsys.readouterr()


def test_ray_settings_follow_the_switch(monkeypatch):
    from ray_train.logs import QUIET_WORKER_ENV, RAY_DATA_QUIET, ray_init_kwargs, train_log_level

    _unset(monkeypatch, VERBOSE_ENV)
    _unset(monkeypatch, "RAY_DATA_LOGGING_CONFIG")
    quiet = ray_init_kwargs({"A": "1"}, local=True)
    assert quiet["logging_level"] == logging.WARNING and quiet["logging_config"].log_level == "WARNING"
    assert quiet["runtime_env"]["env_vars"] == {"A": "1"} | QUIET_WORKER_ENV and train_log_level() == "WARNING"
    import os

    assert os.environ["RAY_DATA_LOGGING_CONFIG"] == str(RAY_DATA_QUIET) and RAY_DATA_QUIET.is_file()
    monkeypatch.setenv(VERBOSE_ENV, "1")
    loud = ray_init_kwargs({"A": "1"}, local=True)
    assert loud["logging_level"] == logging.INFO and loud["runtime_env"]["env_vars"] == {"A": "1", VERBOSE_ENV: "1"}
    assert train_log_level() == "INFO"


def test_library_stdout_drops_only_the_named_noise(monkeypatch, capsys):
    from ray_train.logs import library_stdout

    _unset(monkeypatch, VERBOSE_ENV)
    with library_stdout():
        print("DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully")
        print("a warning worth reading")
    assert capsys.readouterr().out == "a warning worth reading\n"
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with library_stdout():
        print("x built successfully")
    assert capsys.readouterr().out == "x built successfully\n"


def test_quiet_spark_configuration_is_shipped():
    from spark_jobs.session import QUIET_LOG4J

    text = QUIET_LOG4J.read_text()
    assert "rootLogger.level = error" in text


JVM_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector"


@pytest.mark.slow
def test_the_jvm_start_notice_shows_only_with_verbose(tmp_path):
    """The JVM prints JVM_NOTICE to its stderr at start (Spark's launcher adds the module): a quiet Spark start
    keeps it off the console and passes the JVM's other stderr lines on; a verbose one shows it."""
    script = tmp_path / "start.py"
    script.write_text(
        "import os, sys, threading\n"
        "from spark_jobs.session import get_spark, stop_jvm\n"
        "for mode in ('quiet', 'verbose'):\n"
        "    os.environ['INTEREST_VERBOSE'] = '1' if mode == 'verbose' else ''\n"
        "    spark = get_spark(shuffle_partitions=1, driver_memory='1g')\n"
        "    spark.sparkContext._jvm.java.lang.System.err.println(f'the JVM says: {mode} start')\n"
        "    stop_jvm()\n"
        "    for t in threading.enumerate():\n"
        "        t.join(30) if t.name == 'jvm-stderr' else None\n"
        "    print(f'end of the {mode} start', file=sys.stderr, flush=True)\n")
    env = {k: v for k, v in os.environ.items() if k not in (VERBOSE_ENV, "PYSPARK_GATEWAY_PORT")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    quiet, verbose_part = proc.stderr.split("end of the quiet start\n")
    assert "the JVM says: quiet start" in quiet and JVM_NOTICE not in quiet, quiet[-2000:]
    assert "the JVM says: verbose start" in verbose_part and JVM_NOTICE in verbose_part, verbose_part[-2000:]
