"""SparkSession for the ETL: `local[*]` unless spark-submit (or SPARK_MASTER) says otherwise."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from interest_core import storage
from interest_core.verbosity import verbose

QUIET_LOG4J = Path(__file__).resolve().parent / "log4j2-quiet.properties"
# What the JVM itself prints to stderr at start, before any logging configuration: Spark's launcher adds
# --add-modules=jdk.incubator.vector (its JavaModuleOptions), and no JVM option silences the notice that follows.
JVM_START_NOTICE = b"WARNING: Using incubator modules: "


@contextlib.contextmanager
def _jvm_start_notice_dropped():
    """A process started inside (the JVM) gets a pipe as its stderr; a thread passes every line of it on to this
    process's stderr but JVM_START_NOTICE, for as long as the JVM (and what it starts) lives."""
    read_fd, write_fd = os.pipe()
    console = os.dup(2)
    threading.Thread(target=_pass_on, args=(read_fd, console), name="jvm-stderr", daemon=True).start()
    sys.stderr.flush()
    os.dup2(write_fd, 2)  # inherited by the JVM as its stderr
    os.close(write_fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(console, 2)  # this process writes to the console again; the JVM keeps the pipe


def _pass_on(read_fd: int, console: int) -> None:
    with open(read_fd, "rb") as jvm, open(console, "wb") as out:
        for line in jvm:
            if not line.startswith(JVM_START_NOTICE):
                out.write(line)
                out.flush()


def get_spark(app_name: str = "interest-etl", shuffle_partitions: int = 8, driver_memory: str = "4g",
              master: str | None = None, offheap_memory: str = "0") -> SparkSession:
    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the master is already in the conf; only a bare python process defaults to local.
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master or os.environ.get("SPARK_MASTER", "local[*]"))
        builder = builder.config("spark.driver.memory", driver_memory)
        # Tungsten pages and sort pointer arrays off the heap: on a small local heap the 64 MB on-heap arrays of
        # a big sort are G1 humongous objects and fail with "Java heap space" while Spark's own accounting still
        # sees room (seen: the item-graph top-K at 20M events with a 4g heap), instead of spilling.
        if offheap_memory not in ("0", "0g", "0m", ""):
            builder = (builder.config("spark.memory.offHeap.enabled", "true")
                       .config("spark.memory.offHeap.size", offheap_memory))
        # Local Python workers must run the driver's interpreter (the venv), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # An OutOfMemoryError ends the JVM at once (exit code 3, which jvm_exit_reason() reads) instead of leaving
        # it thrashing in GC or half-alive after a failed task: the job ends with a message, never hangs.
        java_options = ["-XX:+ExitOnOutOfMemoryError"]
        if not verbose():  # errors only on the console; the JVM reads it at start, before any setLogLevel
            java_options.append(f"-Dlog4j2.configurationFile={QUIET_LOG4J}")
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    endpoint = storage.s3_endpoint_url()
    if endpoint:  # s3a:// (hadoop-aws) at an S3-compatible store; the keys come from s3a's own chain (environment)
        builder = (builder.config("spark.hadoop.fs.s3a.endpoint", endpoint)
                   .config("spark.hadoop.fs.s3a.path.style.access", "true"))
    builder = (builder
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.adaptive.enabled", "true")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    starts_jvm = "PYSPARK_GATEWAY_PORT" not in os.environ and SparkContext._gateway is None
    with _jvm_start_notice_dropped() if starts_jvm and not verbose() else contextlib.nullcontext():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN" if verbose() else "ERROR")
    return spark


JVM_OUT_OF_MEMORY = 3  # HotSpot's exit code under -XX:+ExitOnOutOfMemoryError


def jvm_exit_code(wait_s: float = 0.0) -> int | None:
    """The exit code of the JVM this process launched when it has ended (waiting up to wait_s for it: a JVM that
    dropped the connection may still be exiting), else None (running, or not ours)."""
    import subprocess

    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    if proc is None:
        return None
    try:
        return proc.wait(wait_s) if wait_s else proc.poll()
    except subprocess.TimeoutExpired:
        return None


def stop_jvm(timeout_s: float = 60) -> None:
    """Stops the Spark session and ends the JVM this Python process launched (PySpark keeps it until the process
    exits). SIGTERM lets Spark's shutdown hooks remove its temporary directories."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway, SparkContext._jvm = None, None
    if proc is not None:
        proc.terminate()
        proc.wait(timeout_s)
