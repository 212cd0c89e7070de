"""The trainer's side of the shards: the train split as a Ray Dataset, collated with the core's one collate."""
from __future__ import annotations

import os
from pathlib import Path

from interest_core.batches import collate
from interest_core.config import Config
from interest_core.contract import TRAIN_COLUMNS, split_files


def train_dataset(data_dir: Path, cfg: Config):
    """The train split as a Ray Dataset: only the train columns are read; shards up to train.materialize_max_mb
    on disk are read once into the object store instead of from storage every epoch."""
    import ray

    files = split_files(data_dir, "train")
    ds = ray.data.read_parquet(files).select_columns(list(TRAIN_COLUMNS))  # projected into the read
    if sum(os.path.getsize(f) for f in files) <= cfg.train.materialize_max_mb * 2**20:
        ds = ds.materialize()
    return ds


def arrow_train_collate(max_len: int):
    """interest_core.batches.collate of training windows, as the ArrowBatchCollateFn Ray Data expects (Arrow
    batches straight to tensors, no pandas or numpy-dict step)."""
    from ray.data.collate_fn import ArrowBatchCollateFn

    class _Collate(ArrowBatchCollateFn):
        def __call__(self, batch):
            return collate(batch, max_len, targets=True)

    return _Collate()
