"""Arrow tables and files of the synthetic data set: Parquet with fixed writer settings, and generator.json."""
from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .rates import EVENT_TYPES, Rates
from .catalog import _Catalog
from .simulate import _Chunk

# Times are whole seconds, but Parquet has no seconds unit (pyarrow would coerce timestamp[s] to ms
# on write anyway), so the declared type is the one readers get back.
TIMESTAMP = pa.timestamp("ms", tz="UTC")
# Fixed writer settings: together with seeded randomness they make the files byte-identical per arguments.
PARQUET_WRITER = {"compression": "zstd", "compression_level": 3}
ROW_GROUP_ROWS = 1 << 17

EVENTS_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("item_id", pa.string()),
    ("event_type", pa.string()),
    ("ts", TIMESTAMP),
    ("session_id", pa.string()),
    ("quantity", pa.int32()),
    ("price", pa.float64()),
])
ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("category", pa.string()),
    ("brand", pa.string()),
    ("price", pa.float64()),
    ("title", pa.string()),
    ("first_ts", TIMESTAMP),
])
GROUND_TRUTH_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("interests", pa.list_(pa.string())),
    ("migrated", pa.bool_()),
    ("migration_ts", TIMESTAMP),
    ("interests_after", pa.list_(pa.string())),
    ("churned", pa.bool_()),
    ("churn_ts", TIMESTAMP),
    ("is_cold", pa.bool_()),
    ("n_events", pa.int64()),
])


def _timestamps(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(seconds * 1000, TIMESTAMP, mask=null)


def _list_column(subs: np.ndarray, names: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    used = subs >= 0
    if null is not None:
        used &= ~null[:, None]
    offsets = np.concatenate([[0], np.cumsum(used.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(subs[used])),
                                    mask=None if null is None else pa.array(null))


def _items_table(catalog: _Catalog, item_ids: pa.Array, sub_names: pa.Array, t0: int) -> pa.Table:
    return pa.table({
        "item_id": item_ids,
        "category": sub_names.take(pa.array(catalog.item_sub)),
        "brand": pa.array(catalog.brand, pa.string()),
        "price": pa.array(catalog.price),
        "title": pa.array(catalog.title, pa.string()),
        "first_ts": _timestamps(t0 + catalog.first_ts),
    }, schema=ITEMS_SCHEMA)


def _chunk_tables(c: _Chunk, user_ids: pa.Array, item_ids: pa.Array, sub_names: pa.Array, price: np.ndarray,
                  t0: int) -> tuple[pa.Table, pa.Table]:
    """Events and ground truth of one chunk of users."""
    user_col = user_ids.take(pa.array(c.user))
    events = pa.table({
        "user_id": user_col,
        "item_id": item_ids.take(pa.array(c.item)),
        "event_type": pa.array(list(EVENT_TYPES)).take(pa.array(c.kind)),
        "ts": _timestamps(t0 + c.ts),
        "session_id": pc.binary_join_element_wise(user_col, pc.cast(pa.array(c.session), pa.string()), "-"),
        "quantity": pa.array(c.quantity),
        "price": pa.array(price[c.item]),
    }, schema=EVENTS_SCHEMA)
    migrated = c.interests.migrated
    truth = pa.table({
        "user_id": user_ids,
        "interests": _list_column(c.interests.subs[:, 0], sub_names),
        "migrated": pa.array(migrated),
        "migration_ts": _timestamps(t0 + c.migration_ts, null=~migrated),
        "interests_after": _list_column(c.interests.subs[:, 1], sub_names, null=~migrated),
        "churned": pa.array(c.churned),
        "churn_ts": _timestamps(t0 + c.last_ts, null=~c.churned),
        "is_cold": pa.array(c.is_cold),
        "n_events": pa.array(c.n_events.astype(np.int64)),
    }, schema=GROUND_TRUTH_SCHEMA)
    return events, truth


USERS_SCHEMA = pa.schema([("user_id", pa.string()), ("age", pa.int32()), ("gender", pa.string()),
                          ("region", pa.string())])
REGION_MATCH = 0.7  # share of users whose region is the top-level category of their first planted interest


def _users_table(c: _Chunk, user_ids: pa.Array, sub_top: np.ndarray) -> pa.Table:
    """Side features of one chunk's users (users.parquet), from the user id's CRC-32 (no random draws, so the
    events stay as they were): age and gender carry nothing; for REGION_MATCH of users the region's first three
    characters are the top-level category of their first planted interest (what a new user's region can tell),
    for the rest another category's."""
    h = np.array([zlib.crc32(u.encode()) for u in user_ids.to_pylist()], dtype=np.int64)
    top = sub_top[c.interests.subs[:, 0, 0]]
    n_top = int(sub_top.max()) + 1
    region_top = np.where(h % 100 < REGION_MATCH * 100, top, (h // 100) % n_top)
    return pa.table({"user_id": user_ids, "age": pa.array((18 + h % 50).astype(np.int32)),
                     "gender": pa.array(np.where((h >> 8) & 1, "F", "M")),
                     "region": pa.array([f"{t:03d}{x:02d}" for t, x in zip(region_top, h % 100)])},
                    schema=USERS_SCHEMA)


class _Output:
    """The files of one data set in out_dir.

    Creating it makes out_dir/events/ and removes the event parts of an earlier run (which may have had
    more chunks). ``write_chunk`` needs ``write_items`` first (for the item and category names) and runs
    inside ``with output:``, which holds ground_truth.parquet open.
    """

    def __init__(self, out_dir: str | Path, users: int, t0: int):
        self.dir = Path(out_dir)
        self._events_dir = self.dir / "events"
        self._events_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._events_dir.glob("part-*.parquet"):
            stale.unlink()
        self._users = users
        self._t0 = t0
        self._item_ids = self._sub_names = self._price = None  # set by write_items
        self._truth: pq.ParquetWriter | None = None
        self._users_file: pq.ParquetWriter | None = None

    def write_items(self, catalog: _Catalog) -> None:
        n_items = len(catalog.price)
        width = max(5, len(str(n_items - 1)))
        self._item_ids = pa.array([f"i{i:0{width}d}" for i in range(n_items)])
        self._sub_names = pa.array(catalog.sub_names)
        self._price = catalog.price
        tops = [name.split("/")[0] for name in catalog.sub_names]  # sub-category -> its top-level category
        self._sub_top = np.unique(tops, return_inverse=True)[1]
        pq.write_table(_items_table(catalog, self._item_ids, self._sub_names, self._t0), self.dir / "items.parquet",
                       row_group_size=ROW_GROUP_ROWS, **PARQUET_WRITER)

    def __enter__(self) -> _Output:
        self._truth = pq.ParquetWriter(self.dir / "ground_truth.parquet", GROUND_TRUTH_SCHEMA, **PARQUET_WRITER)
        self._users_file = pq.ParquetWriter(self.dir / "users.parquet", USERS_SCHEMA, **PARQUET_WRITER)
        return self

    def __exit__(self, *exc_info) -> None:
        self._truth.close()
        self._users_file.close()
        self._truth = self._users_file = None

    def write_chunk(self, index: int, first_user: int, chunk: _Chunk) -> None:
        """events/part-<index>.parquet and the chunk's ground-truth rows; users are numbered from first_user."""
        width = max(6, len(str(self._users - 1)))
        user_ids = pa.array([f"u{i:0{width}d}" for i in range(first_user, first_user + len(chunk.n_events))])
        events, truth = _chunk_tables(chunk, user_ids, self._item_ids, self._sub_names, self._price, self._t0)
        pq.write_table(events, self._events_dir / f"part-{index:05d}.parquet", row_group_size=ROW_GROUP_ROWS,
                       **PARQUET_WRITER)
        self._truth.write_table(truth, row_group_size=ROW_GROUP_ROWS)
        self._users_file.write_table(_users_table(chunk, user_ids, self._sub_top), row_group_size=ROW_GROUP_ROWS)

    def write_summary(self, summary: dict) -> dict:
        """Writes generator.json; returns exactly what the file holds (tuples become lists)."""
        text = json.dumps(summary, indent=2, sort_keys=True)
        (self.dir / "generator.json").write_text(text + "\n")
        return json.loads(text)


def _summary(*, params: dict, rates: Rates, calibration: dict, catalog: _Catalog, by_type: np.ndarray,
             item_seen: np.ndarray, users_total: dict, n_sessions: int, n_files: int) -> dict:
    n = dict(zip(EVENT_TYPES, by_type.tolist()))
    total = int(by_type.sum())
    users = params["users"]
    warm_users = users - users_total["cold"]
    return {
        "params": params,
        "rates": dataclasses.asdict(rates),
        "calibration": calibration,
        "catalog": {"top_categories": catalog.n_top, "sub_categories": catalog.n_sub,
                    "cold_items": int(catalog.cold.sum())},
        "counts": {
            "events": total, "events_by_type": n, "sessions": n_sessions, "event_files": n_files,
            "users": users, "cold_users": users_total["cold"], "migrated_users": users_total["migrated"],
            "churned_users": users_total["churned"], "items": len(item_seen),
            "items_with_events": int(item_seen.sum()),
            "cold_items_with_events": int((item_seen & catalog.cold).sum()),
        },
        "observed": {
            "events_per_user": total / users,
            "view_to_cart": n["cart"] / max(n["view"], 1),
            "cart_to_buy": n["buy"] / max(n["cart"], 1),
            "fav_per_view": n["fav"] / max(n["view"], 1),
            "cold_user_fraction": users_total["cold"] / users,
            "migrated_fraction_of_warm_users": users_total["migrated"] / max(warm_users, 1),
            "churned_fraction": users_total["churned"] / users,
        },
    }
