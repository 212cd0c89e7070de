"""What Ray, Ray Train, Ray Data and DeepSpeed print, by verbosity (interest_core.verbosity): quiet by default, the
libraries' INFO logs, execution plans, per-report lines, C++ error lines and deprecation warnings with --verbose.
Used wherever this project starts or joins Ray (training, the batch export)."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator

from interest_core.verbosity import VERBOSE_ENV, verbose
from ray_train.local_instance import SETUP_HOOK

# Worker environment when quiet: no Python deprecation/future warnings from the libraries. (Ray's C++ core logs one
# ERROR line per actor pool, "constructor arguments in the object store"; RAY_BACKEND_LOG_LEVEL would hide it but
# makes every Ray process announce the level it read, which is noisier.)
QUIET_WORKER_ENV = {"PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning"}
RAY_DATA_QUIET = Path(__file__).resolve().parent / "ray_data_quiet_logging.yaml"
LIBRARY_LOGGERS = ("ray.data", "ray.train", "ray.tune", "ray.air", "deepspeed", "DeepSpeed", "py.warnings")


def ray_init_kwargs(env_vars: dict[str, str], local: bool) -> dict:
    """Keyword arguments for ray.init (log levels, the workers' environment). local: this process starts the
    instance (Ray 2.60 turns token authentication on for it, and says so: a warning only --verbose shows). The
    workers run local_instance.setup_worker either way."""
    import ray

    quiet = not verbose()
    if local and quiet:
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    env = dict(env_vars) | (QUIET_WORKER_ENV if quiet else {VERBOSE_ENV: "1"})
    if quiet:
        # Ray Data's console handler at ERROR, here and (a local instance inherits this environment) in Ray's
        # own actors that execute datasets; a remote cluster's nodes may not have this path, so not sent there.
        os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_QUIET))
    # every worker process talks to this cluster only (ray_train/local_instance.py): a local instance, or a cluster
    # joined on a machine that runs another instance (a head node where someone also runs `interest train`)
    runtime_env = {"env_vars": env, "worker_process_setup_hook": SETUP_HOOK}
    return {"runtime_env": runtime_env, "log_to_driver": True,
            "logging_level": logging.WARNING if quiet else logging.INFO,
            "logging_config": ray.LoggingConfig(log_level="WARNING" if quiet else "INFO")}


def quiet_libraries() -> None:
    """In this process (driver or worker): library loggers to ERROR, their warnings off and Ray Data's
    execution-plan lines off, unless verbose."""
    if verbose():
        return
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import ray.data

    ray.data.DataContext.get_current().print_on_execution_start = False
    try:  # Ray Train 2.60 logs every report at INFO through a logger named by its file's path, not ray.train's
        from ray.train.v2._internal.execution import context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass


def train_log_level() -> str:
    """Ray Train's own log level (RunConfig.logging_config): its per-checkpoint and per-report INFO lines."""
    return "INFO" if verbose() else "WARNING"


@contextlib.contextmanager
def library_stdout(noise: tuple[str, ...] = ("built successfully",)) -> Iterator[None]:
    """Holds back what a library prints to stdout inside the block and, unless verbose, drops the lines that
    contain one of `noise` (DeepSpeed prints "... built successfully" for its CPU communication op)."""
    if verbose():
        yield
        return
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        kept = [line for line in buf.getvalue().splitlines() if not any(n in line for n in noise)]
        if kept:
            print("\n".join(kept), flush=True)
