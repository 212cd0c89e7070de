"""Quiet by default, --verbose for the libraries' logs: the switch, and what it sets for Ray and Spark."""
import logging

from interest_core.verbosity import VERBOSE_ENV, verbose


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
