"""A k-way merge of sorted Parquet parts, holding about one record batch per part.

The re-engagement list is ranked across every shard: each actor sorts its shard's candidates into a part file, and
the driver merges the parts (an external merge sort). The driver's memory is then parts x batch_size rows whatever
the number of users; a distributed sort whose blocks stream through the driver held more the more users there were
(`bench/export_bench.py`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SortKeys = list[tuple[str, str]]  # [(column, "ascending" | "descending")], pyarrow's sort_by form


def order_key(row: dict[str, Any], keys: SortKeys) -> tuple:
    """A row's position in `keys` order as a comparable tuple (descending columns must be numeric)."""
    return tuple(-row[c] if order == "descending" else row[c] for c, order in keys)


def _upto(table: pa.Table, keys: SortKeys, row: dict[str, Any]) -> int:
    """Rows of `table` (sorted by keys) that sort before or equal to `row`: the length of that prefix."""
    before = pa.array([False] * table.num_rows)
    equal = pa.array([True] * table.num_rows)
    for col, order in keys:
        c = table.column(col)
        strictly = (pc.greater if order == "descending" else pc.less)(c, row[col])
        before = pc.or_(before, pc.and_(equal, strictly))
        equal = pc.and_(equal, pc.equal(c, row[col]))
    return int(pc.sum(pc.or_(before, equal).cast(pa.int64())).as_py() or 0)


class _Part:
    """One sorted part: its reader, and the key of the last row read from it (None before the first)."""

    def __init__(self, path: str | Path, keys: SortKeys, batch_size: int):
        self.path, self.keys = str(path), keys
        self.batches = pq.ParquetFile(self.path).iter_batches(batch_size=batch_size)
        self.last: dict[str, Any] | None = None
        self.done = False

    def read(self) -> pa.Table | None:
        """The next non-empty batch (checked to continue the part's order), or None at the end."""
        for rb in self.batches:
            if not rb.num_rows:
                continue
            t = pa.Table.from_batches([rb])
            first = {c: t.column(c)[0].as_py() for c, _ in self.keys}
            if (self.last is not None and order_key(first, self.keys) < order_key(self.last, self.keys)) or (
                    t.num_rows > 1 and not t.equals(t.sort_by(self.keys))):
                raise ValueError(f"{self.path}: rows are not sorted by {self.keys}")
            self.last = {c: t.column(c)[-1].as_py() for c, _ in self.keys}
            return t
        self.done = True
        return None


def merge_sorted(paths: list[str | Path], keys: SortKeys, batch_size: int = 65_536) -> Iterator[pa.Table]:
    """Tables of every part's rows in `keys` order. Each part must be sorted by `keys` (else a ValueError naming
    it). Rows up to the smallest "last row read" among the parts still being read are final: every unread row of
    a part sorts after that part's last read row."""
    parts = [_Part(p, keys, batch_size) for p in paths]
    pool = [t for t in (p.read() for p in parts) if t is not None]
    while pool:
        table = pa.concat_tables(pool).sort_by(keys)
        live = [p for p in parts if not p.done]
        frontier = min(live, key=lambda p: order_key(p.last, keys)) if live else None
        n = table.num_rows if frontier is None else _upto(table, keys, frontier.last)
        if n:
            yield table.slice(0, n)
        pool = [table.slice(n)] if n < table.num_rows else []
        if frontier is not None:  # every row it had read is out: read on
            got = frontier.read()
            if got is not None:
                pool.append(got)
