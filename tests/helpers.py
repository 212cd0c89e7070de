"""What several test modules share: the CLI in this process on the session's Spark, a captured console, the library
chatter that a quiet console must not show, the planner's Spark environment."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Library chatter a quiet (not --verbose) console must not show; each was on a console before it was quietened.
CHATTER = ("Using Spark's default log4j profile", "Setting default log level", "WARN Utils", "NativeCodeLoader",
           "Token authentication is enabled", "Started a local Ray instance", "Execution plan of Dataset",
           "execution finished in", "Progress bars disabled", "Checkpoint successfully created",
           "Reporting training result", "Requesting resources", "Setting up process group", "built successfully",
           "UserWarning", "FutureWarning", "DeprecationWarning", " INFO ", "Using incubator modules")


def chatter(console: str) -> list[str]:
    """The console's lines that are library chatter (empty for a quiet console)."""
    return [line for line in console.splitlines() if any(c in line for c in CHATTER)]


def cli_on_the_session_spark(mp, spark, argv: list[str]) -> int:
    """`interest ARGV` through the CLI's own main() in this process, its ETL on the session's Spark (one JVM start
    less than a subprocess; the tests that start `interest etl` as a user does keep the JVM start covered).
    mp: a pytest MonkeyPatch (undone by the caller)."""
    from interest.cli import main
    from spark_jobs import etl

    mp.setattr(etl, "get_spark_for", lambda cfg, master=None: spark)
    mp.setattr(spark, "stop", lambda: None)  # the session's Spark outlives the command
    return main(argv)


@contextlib.contextmanager
def console_captured():
    """Everything printed through sys.stdout / sys.stderr meanwhile (this thread's prints, and Ray's, which prints
    its workers' lines to the driver's sys.stdout / sys.stderr of the moment), as two StringIO."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def plan_env(events: str) -> dict:
    """The planner's `--spark-env` exports for EVENTS on 2 executors of 1 core, as a dict."""
    out = subprocess.run([sys.executable, "-m", "interest.cli", "plan", "--events", events, "--executors", "2",
                          "--executor-cores", "1", "--spark-env"], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
