"""Quiet by default: a user sees the stages, progress and results; the libraries' own chatter (Spark's log4j, Ray's
INFO logs, Ray Data's execution plans, Ray Train's per-report lines, library warnings) only with `interest
--verbose` or INTEREST_VERBOSE=1. The flag travels as an environment variable, so Ray workers (runtime_env) and
commands started under `ray job submit` see the same setting."""
from __future__ import annotations

import os

VERBOSE_ENV = "INTEREST_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool) -> None:
    if on:
        os.environ[VERBOSE_ENV] = "1"
