"""Batch scoring of every user with Ray Data: the shards' files go to a pool of actors, each of which loads the
model once and turns its files into rows (profiles: interest.profiles; re-engagement: interest.reengage), written
as Parquet by Ray Data.

The ETL hash-partitions every split by user into data.num_files parts and sorts each part by user_id
(spark_jobs.etl._write), so test part i, decay_test part i and drift_test part i hold the same users in the same
order: a task is such a triple of files, merge-joined inside the actor one record batch at a time. The driver sees file names, footers and
the re-engagement list as a k-way merge of the actors' sorted part files (a batch per part); never all users.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from interest.profiles import ProfileScorer, ProfileSettings
from interest_core.contract import DECAY_COLUMNS, DRIFT_COLUMNS, EVAL_COLUMNS, split_files
from ray_train.logs import quiet_libraries, ray_init_kwargs

from .merge import merge_sorted

_PART = re.compile(r"part-(\d+)")
REENGAGE_ORDER = [("activity_at_risk", "descending"), ("user_id", "ascending")]  # the list's ranking
RUN_ROWS = 100_000  # re-engagement candidates an actor sorts into one run (part file)
RUN_ROW_GROUP = 4_096  # rows per row group of a run: the merge's reader of a part decodes one row group at a time
MERGE_ROWS = 65_536  # rows the driver's merge of the runs buffers, split evenly over the runs
DRIVER_MAX_USERS = 20_000  # test users an export without a cluster scores in its own process (scores_in_driver)


def file_pairs(data_dir: str | Path) -> list[dict[str, str]]:
    """[{"test": file, "decay": decay_test file of the same users or "", "drift": drift_test file or ""}] over the
    test split's files."""
    def part(f: str) -> str:
        m = _PART.search(Path(f).name)
        return m.group(1) if m else Path(f).name

    def parts(split: str) -> dict[str, str]:
        return {part(f): f for f in split_files(data_dir, split)} if (Path(data_dir) / split).is_dir() else {}

    decay, drift = parts("decay_test"), parts("drift_test")
    return [{"test": f, "decay": decay.get(part(f), ""), "drift": drift.get(part(f), "")}
            for f in split_files(data_dir, "test")]


def sorted_batches(path: str, columns: list[str], batch_size: int) -> Iterator[pa.Table]:
    """A shard's record batches, checking the contract's order (user_id ascending within a file)."""
    last = None
    for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        ids = rb.column(rb.schema.get_field_index("user_id"))
        if not len(ids):
            continue
        if (last is not None and ids[0].as_py() < last) or (
                len(ids) > 1 and not pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py()):
            raise ValueError(f"{path}: rows are not sorted by user_id as the ETL writes them; rerun `interest etl`")
        last = ids[-1].as_py()
        yield pa.Table.from_batches([rb])


class SortedSide:
    """A user_id-sorted stream of batches, handed out per test batch (ascending users): holds the rows up to the
    test batch's last user plus one batch."""

    def __init__(self, batches: Iterator[pa.Table]):
        self.batches, self.buffer = batches, None

    def rows_for(self, test: pa.Table) -> pa.Table | None:
        hi = test.column("user_id")[-1].as_py()
        while self.buffer is None or not self.buffer.num_rows or pc.max(self.buffer.column("user_id")).as_py() <= hi:
            nxt = next(self.batches, None)
            if nxt is None:
                break
            self.buffer = nxt if self.buffer is None else pa.concat_tables([self.buffer, nxt])
        if self.buffer is None:
            return None
        ids = self.buffer.column("user_id")
        rows = self.buffer.filter(pc.is_in(ids, value_set=test.column("user_id").combine_chunks()))
        self.buffer = self.buffer.filter(pc.greater(ids, hi))
        return rows


def merge_join(test_batches: Iterator[pa.Table], *sides: Iterator[pa.Table] | None
               ) -> Iterator[tuple[pa.Table, ...]]:
    """(test batch, each side's rows of its users or None) for inputs sorted by user_id (a side of None: none)."""
    cursors = [SortedSide(b) if b is not None else None for b in sides]
    for test in test_batches:
        yield (test, *(c.rows_for(test) if c is not None and test.num_rows else None for c in cursors))


def profile_file(scorer: ProfileScorer, test_file: str, decay_file: str = "", drift_file: str = ""
                 ) -> Iterator[pa.Table]:
    """The profiles of one test file's users, a scoring batch at a time."""
    size = scorer.s.batch_size
    decay = sorted_batches(decay_file, DECAY_COLUMNS, size) if decay_file else None
    drift = sorted_batches(drift_file, DRIFT_COLUMNS, size) if drift_file and scorer.migration is not None else None
    for test, dec, dri in merge_join(sorted_batches(test_file, EVAL_COLUMNS, size), decay, drift):
        yield scorer.profiles(test.to_pydict(), dec.to_pydict() if dec is not None else None,
                              dri.to_pydict() if dri is not None else None)


class ProfileActor:
    """A Ray Data actor: batches of file pairs -> profile tables, one per scoring batch (a generator)."""

    def __init__(self, run_dir: str, data_dir: str, settings: ProfileSettings):
        self.scorer = ProfileScorer(run_dir, data_dir, settings)

    def __call__(self, batch: dict) -> Iterator[pa.Table]:
        for test_file, decay_file, drift_file in zip(batch["test"], batch["decay"], batch["drift"]):
            yield from profile_file(self.scorer, str(test_file), str(decay_file), str(drift_file))


class ReengageActor:
    """A Ray Data actor: batches of (decay_test file, run path prefix) -> the file's re-engagement candidates, in
    sorted runs of at most RUN_ROWS rows (REENGAGE_ORDER), each written to a part file; yields only each part's path
    and row count, so an actor holds one run and the driver none."""

    def __init__(self, run_dir: str, data_dir: str, settings: ProfileSettings):
        self.scorer = ProfileScorer(run_dir, data_dir, settings)

    def __call__(self, batch: dict) -> Iterator[pa.Table]:
        from interest.reengage import candidates

        for decay_file, prefix in zip(batch["decay"], batch["part"]):
            run, rows, k = [], 0, 0
            for part in sorted_batches(str(decay_file), DECAY_COLUMNS, self.scorer.s.batch_size):
                got = candidates(self.scorer, part.to_pydict())
                run.append(got)
                rows += got.num_rows
                if rows >= RUN_ROWS:
                    yield _write_run(run, f"{prefix}-{k:05d}.parquet")
                    run, rows, k = [], 0, k + 1
            if rows:
                yield _write_run(run, f"{prefix}-{k:05d}.parquet")


def _write_run(tables: list[pa.Table], path: str) -> pa.Table:
    table = pa.concat_tables(tables).sort_by(REENGAGE_ORDER)
    pq.write_table(table, path, row_group_size=RUN_ROW_GROUP)
    return pa.table({"part": [path], "rows": [table.num_rows]})


def init_ray(address: str | None, actors: int) -> bool:
    """Connects to a cluster or starts a local instance (logical CPUs for every actor plus Ray Data's own tasks);
    returns True when this process started Ray."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, **ray_init_kwargs({}, local=False))
        quiet_libraries()
        return False
    ray.init(num_cpus=max(os.cpu_count() or 1, actors + 2), include_dashboard=False, **ray_init_kwargs({}, local=True))
    quiet_libraries()
    return True


def scores_in_driver(address: str | None, actors: int | None, users: int) -> bool:
    """Whether the export scores its users in this process rather than in Ray Data actors: no cluster given (no
    address, no RAY_ADDRESS), no export.actors set, and at most DRIVER_MAX_USERS test users (a Ray instance and its
    actor pool cost 10-15 s to start, more than scoring that many users here)."""
    return not (address or os.environ.get("RAY_ADDRESS") or actors) and users <= DRIVER_MAX_USERS


def _in_driver(items: list[dict], actor: type, run_dir: Path, data_dir: Path,
               settings: ProfileSettings) -> Iterator[pa.Table]:
    """What _map's actors yield, computed here by one instance of the actor class."""
    scorer = actor(str(run_dir), str(data_dir), settings)
    for item in items:
        yield from scorer({k: [v] for k, v in item.items()})


def _map(items: list[dict], actor: type, run_dir: Path, data_dir: Path, settings: ProfileSettings,
         actors: int | None):
    import ray
    import ray.data

    gpus = int(ray.cluster_resources().get("GPU", 0))  # whole GPUs: one actor holds one
    n = actors or (gpus if gpus >= 1 else max(1, int(ray.cluster_resources().get("CPU", 1)) - 1))
    if gpus >= 1:
        n = min(n, gpus)
    n = max(1, min(n, len(items)))
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        actor, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=n), num_cpus=1,
        num_gpus=1 if gpus >= 1 else 0,
        fn_constructor_kwargs={"run_dir": str(run_dir), "data_dir": str(data_dir), "settings": settings})


def write_profiles(run_dir: Path, data_dir: Path, settings: ProfileSettings, out: Path,
                   actors: int | None, in_driver: bool = False) -> int:
    """Scores every test user into out/ (Parquet parts); returns the number of profiles written."""
    if in_driver:
        out.mkdir(parents=True, exist_ok=True)
        for i, table in enumerate(_in_driver(file_pairs(data_dir), ProfileActor, run_dir, data_dir, settings)):
            pq.write_table(table, out / f"part-{i:05d}.parquet")
    else:
        _map(file_pairs(data_dir), ProfileActor, run_dir, data_dir, settings, actors).write_parquet(str(out))
    return sum(pq.read_metadata(f).num_rows for f in sorted(out.glob("*.parquet")))


def write_reengage(run_dir: Path, data_dir: Path, settings: ProfileSettings, path: Path,
                   actors: int | None, in_driver: bool = False) -> int:
    """The re-engagement list (interest.reengage) of every decay_test user below the threshold, ranked by the
    activity at risk (ties by pseudonym) across all shards: each actor sorts one shard's candidates into a part
    file, the driver merges the parts (merge.py) and numbers the ranks while writing `path`. Returns the number of
    users listed."""
    from interest.reengage import REENGAGE_SCHEMA

    tmp = path.parent / f".{path.name}.parts"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        files = [{"decay": f, "part": str(tmp / f"part-{i:05d}")}
                 for i, f in enumerate(split_files(data_dir, "decay_test"))]
        done = [r for t in _in_driver(files, ReengageActor, run_dir, data_dir, settings) for r in t.to_pylist()] \
            if in_driver else _map(files, ReengageActor, run_dir, data_dir, settings, actors).take_all()
        parts = sorted(r["part"] for r in done)
        n, per_part = 0, max(256, MERGE_ROWS // max(len(parts), 1))  # the driver holds about MERGE_ROWS rows
        with pq.ParquetWriter(path, REENGAGE_SCHEMA) as writer:
            for batch in merge_sorted(parts, REENGAGE_ORDER, per_part):
                rank = pa.array(np.arange(n + 1, n + batch.num_rows + 1), pa.int32())
                writer.write_table(batch.append_column("rank", rank).select(REENGAGE_SCHEMA.names)
                                   .cast(REENGAGE_SCHEMA))
                n += batch.num_rows
        if n != sum(r["rows"] for r in done):
            raise RuntimeError(f"re-engagement: {n} users merged from parts holding {sum(r['rows'] for r in done)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n
