"""Shard reading and collation: the trainer's side of the shard format in spark_jobs/schema.py.

Sequences are left-padded to max_len so the most recent event always sits at position max_len - 1.
Training windows hold max_len + 1 events: positions [:-1] are the input, [1:] the next-item targets, so every
position of a window carries a loss.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from spark_jobs.schema import EVAL_COLUMNS, SCHEMA_VERSION, TRAIN_COLUMNS

KNOWN_SCHEMA_VERSIONS = {SCHEMA_VERSION}


class DataDirError(ValueError):
    """The data directory is not a finished ETL output this trainer can read."""


def load_manifest(data_dir: str | Path) -> dict:
    d = Path(data_dir)
    if not (d / "_SUCCESS").exists():
        raise DataDirError(f"{d}: no _SUCCESS marker; the ETL did not finish there. Run `interest etl ... "
                           f"--output {d}` first")
    manifest = json.loads((d / "manifest.json").read_text())
    version = manifest.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise DataDirError(f"{d}: shard schema version {version!r} is not one this trainer reads "
                           f"({sorted(KNOWN_SCHEMA_VERSIONS)}); rerun the ETL with this version of interest-trainer")
    return manifest


def split_files(data_dir: str | Path, split: str) -> list[str]:
    files = sorted(str(p) for p in (Path(data_dir) / split).glob("*.parquet"))
    if not files:
        raise DataDirError(f"{data_dir}/{split}: no Parquet files")
    return files


def _pad_left(seqs, length: int, dtype=np.int64) -> np.ndarray:
    out = np.zeros((len(seqs), length), dtype=dtype)
    for i, s in enumerate(seqs):
        s = np.asarray(s, dtype=dtype)[-length:]
        if len(s):
            out[i, length - len(s):] = s
    return out


def collate_train(batch: dict, max_len: int) -> dict[str, torch.Tensor]:
    """Ray Data numpy batch of TRAIN rows -> model batch with per-position targets."""
    items, etypes, ts = batch["items"], batch["event_types"], batch["ts"]
    inp = lambda col: [np.asarray(x)[:-1] for x in col]  # noqa: E731
    out = lambda col: [np.asarray(x)[1:] for x in col]  # noqa: E731
    return {
        "items": torch.from_numpy(_pad_left(inp(items), max_len)),
        "event_types": torch.from_numpy(_pad_left(inp(etypes), max_len)),
        "ts": torch.from_numpy(_pad_left(inp(ts), max_len)),
        "targets": torch.from_numpy(_pad_left(out(items), max_len)),
        "target_event_types": torch.from_numpy(_pad_left(out(etypes), max_len)),
    }


def _pad_left_lists(col, length: int, drop_first: bool = False, drop_last: bool = False) -> np.ndarray:
    """Arrow list column -> (B, length) int64, left-padded, vectorised (no Python loop over rows).

    Row r keeps the last `length` elements of seq[drop_first : n - drop_last].
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.cumsum(n) - n
    end = n - int(drop_last)
    take = np.clip(np.minimum(end - int(drop_first), length), 0, None)
    within = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    out = np.zeros((len(n), length), dtype=np.int64)
    out[np.repeat(np.arange(len(n)), take), np.repeat(length - take, take) + within] = \
        values[np.repeat(starts + end - take, take) + within]
    return out


class TrainCollate:
    """Ray Data collate for TRAIN rows straight from Arrow batches (see collate_train for the layout)."""

    def __init__(self, max_len: int):
        self.max_len = max_len

    def __call__(self, table) -> dict[str, torch.Tensor]:
        L = self.max_len
        return {
            "items": torch.from_numpy(_pad_left_lists(table["items"], L, drop_last=True)),
            "event_types": torch.from_numpy(_pad_left_lists(table["event_types"], L, drop_last=True)),
            "ts": torch.from_numpy(_pad_left_lists(table["ts"], L, drop_last=True)),
            "targets": torch.from_numpy(_pad_left_lists(table["items"], L, drop_first=True)),
            "target_event_types": torch.from_numpy(_pad_left_lists(table["event_types"], L, drop_first=True)),
        }


def arrow_train_collate(max_len: int):
    """TrainCollate as the ArrowBatchCollateFn Ray Data expects (imported lazily: ray is not needed to read)."""
    from ray.data.collate_fn import ArrowBatchCollateFn

    class _Collate(ArrowBatchCollateFn):
        def __init__(self):
            super().__init__()
            self.impl = TrainCollate(max_len)

        def __call__(self, batch):
            return self.impl(batch)

    return _Collate()


def collate_eval(rows: dict, max_len: int) -> dict[str, torch.Tensor]:
    """EVAL rows (dict of columns) -> model inputs for scoring at the last position."""
    return {
        "items": torch.from_numpy(_pad_left(rows["items"], max_len)),
        "event_types": torch.from_numpy(_pad_left(rows["event_types"], max_len)),
        "ts": torch.from_numpy(_pad_left(rows["ts"], max_len)),
    }


def read_eval_split(data_dir: str | Path, split: str, rank: int = 0, world_size: int = 1,
                    max_rows: int | None = None) -> dict[str, list]:
    """This rank's part of a valid/test split (files, then rows, dealt round-robin; nothing dropped)."""
    files = split_files(data_dir, split)
    table = pq.ParquetDataset(files).read(columns=EVAL_COLUMNS)
    # Rows are in a deterministic order (sorted files, sorted rows), so rank r taking rows r, r+W, ... covers
    # every row exactly once across ranks.
    if max_rows is not None:
        table = table.slice(0, max_rows)
    idx = np.arange(rank, table.num_rows, world_size)
    return table.take(idx).to_pydict()


def train_columns() -> list[str]:
    return list(TRAIN_COLUMNS)
