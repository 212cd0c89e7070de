"""Batch scoring of every user with Ray Data: the shards' files go to a pool of actors, each of which loads the
model once and turns its files into profile rows (interest.profiles), written as Parquet parts by Ray Data.

The ETL hash-partitions every split by user into data.num_files parts (spark_jobs.etl._write), so test part i and
decay_test part i hold the same users: a task is such a pair of files, joined inside the actor. The driver sees
only file names and the written parts' footers, never the users.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from interest.profiles import ProfileScorer, ProfileSettings
from interest_core.contract import DECAY_COLUMNS, EVAL_COLUMNS, split_files

_PART = re.compile(r"part-(\d+)")


def file_pairs(data_dir: str | Path) -> list[dict[str, str]]:
    """[{"test": file, "decay": file of the same users or ""}] over the test split's files."""
    def part(f: str) -> str:
        m = _PART.search(Path(f).name)
        return m.group(1) if m else Path(f).name

    decay = {part(f): f for f in split_files(data_dir, "decay_test")} \
        if (Path(data_dir) / "decay_test").is_dir() else {}
    return [{"test": f, "decay": decay.get(part(f), "")} for f in split_files(data_dir, "test")]


class ProfileActor:
    """A Ray Data actor: batches of file pairs -> profile tables, one per scoring batch (a generator, so an
    actor never holds more than a file's decay rows and one batch of profiles)."""

    def __init__(self, run_dir: str, data_dir: str, settings: ProfileSettings, torch_threads: int = 1):
        import torch

        torch.set_num_threads(torch_threads)
        self.scorer = ProfileScorer(run_dir, data_dir, settings)

    def __call__(self, batch: dict) -> Iterator[pa.Table]:
        for test_file, decay_file in zip(batch["test"], batch["decay"]):
            yield from profile_file(self.scorer, str(test_file), str(decay_file))


def profile_file(scorer: ProfileScorer, test_file: str, decay_file: str = "") -> Iterator[pa.Table]:
    """The profiles of one test file's users, a scoring batch at a time."""
    decay_rows = pq.read_table(decay_file, columns=DECAY_COLUMNS).to_pydict() if decay_file else None
    for rb in pq.ParquetFile(test_file).iter_batches(batch_size=scorer.s.batch_size, columns=EVAL_COLUMNS):
        yield scorer.profiles(rb.to_pydict(), decay_rows)


def init_ray(address: str | None, actors: int) -> bool:
    """Connects to a cluster or starts a local instance (logical CPUs for every actor plus Ray Data's own tasks);
    returns True when this process started Ray."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
        return False
    ray.init(num_cpus=max(os.cpu_count() or 1, actors + 2), include_dashboard=False, log_to_driver=True,
             logging_level=logging.WARNING)
    return True


def write_profiles(run_dir: Path, data_dir: Path, settings: ProfileSettings, out: Path,
                   actors: int | None) -> int:
    """Scores every test user into out/ (Parquet parts); returns the number of profiles written."""
    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # execution plans and "finished" notes
    gpus = ray.cluster_resources().get("GPU", 0)
    pairs = file_pairs(data_dir)
    n_actors = actors or (int(gpus) if gpus >= 1 else max(1, int(ray.cluster_resources().get("CPU", 1)) - 1))
    n_actors = max(1, min(n_actors, len(pairs)))
    ds = ray.data.from_items(pairs, override_num_blocks=len(pairs)).map_batches(
        ProfileActor, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_cpus=1,
        num_gpus=1 if gpus >= 1 else 0,
        fn_constructor_kwargs={"run_dir": str(run_dir), "data_dir": str(data_dir), "settings": settings})
    ds.write_parquet(str(out))
    return sum(pq.read_metadata(f).num_rows for f in sorted(out.glob("*.parquet")))
