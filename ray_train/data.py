"""The trainer's side of the shards: the train split as a Ray Dataset, collated with the core's one collate."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from interest_core import storage
from interest_core.batches import collate
from interest_core.config import Config
from interest_core.contract import TRAIN_COLUMNS
from interest_core.data_versions import DataDirError


# Train shards up to this size are read by the driver itself and handed to Ray Data as Arrow tables: a Ray Data
# read starts a pool of read tasks and worker processes, 5-13 s on 2 cores for a few MB, longer than training on
# them (bench/train_bench.py --fixed-cost). Larger ones are read by Ray Data's tasks.
DRIVER_READ_MAX_MB = 64


def train_dataset(data_at: str | Path, cfg: Config, rows: int, world: int):
    """The train split as a Ray Dataset, read where the data version lives (a local directory or a URI of shared
    storage, through its pyarrow filesystem): only the train columns are read; shards up to DRIVER_READ_MAX_MB are
    read by the driver into Ray's object store, up to train.materialize_max_mb by Ray Data's tasks into it, larger
    ones stream from storage every epoch. Padded with rows that carry no loss to a multiple of the world size, so
    the equal split across ranks drops no training row."""
    import ray

    fs, files = storage.files(storage.join(data_at, "train"), ".parquet")
    if not files:
        raise DataDirError(f"{data_at}/train: no Parquet files")
    size_mb = sum(i.size for i in fs.get_file_info(files)) / 2**20
    padding = [padding_rows(files[0], world - rows % world, fs)] if rows % world else []
    if size_mb <= min(DRIVER_READ_MAX_MB, cfg.train.materialize_max_mb):
        tables = [pq.read_table(f, columns=list(TRAIN_COLUMNS), filesystem=fs) for f in files]
        return ray.data.from_arrow(tables + padding)
    ds = ray.data.read_parquet(files, filesystem=fs).select_columns(list(TRAIN_COLUMNS))  # projected into the read
    if padding:
        ds = ds.union(ray.data.from_arrow(padding))
    if size_mb <= cfg.train.materialize_max_mb:
        ds = ds.materialize()
    return ds


def padding_rows(file: str, n: int, filesystem=None) -> pa.Table:
    """n copies of the file's first window with first_target = its length: read like any row, scored nowhere."""
    first = pq.ParquetFile(file, filesystem=filesystem).read_row_group(0, columns=list(TRAIN_COLUMNS)).slice(0, 1)
    length = pc.list_value_length(first["items"])
    first = first.set_column(first.schema.get_field_index("first_target"), "first_target", length.cast(pa.int32()))
    return pa.concat_tables([first] * n)


def arrow_train_collate(max_len: int):
    """interest_core.batches.collate of training windows, as the ArrowBatchCollateFn Ray Data expects (Arrow
    batches straight to tensors, no pandas or numpy-dict step)."""
    from ray.data.collate_fn import ArrowBatchCollateFn

    class _Collate(ArrowBatchCollateFn):
        def __call__(self, batch):
            return collate(batch, max_len, targets=True)

    return _Collate()
