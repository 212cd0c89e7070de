"""The data contract between the stages: ids, the shard format, the manifest, the data directory.

The Spark ETL writes it, the trainer, the evaluator and the exporter read it; it is defined here once, as Arrow
schemas, so no reader needs pyspark to learn a column name. Layout of a data directory:

  (This is one version: the ETL's --output holds one directory per version and a pointer, data_versions.py.)
  _SUCCESS        written last; a directory without it is an unfinished ETL and is refused
  manifest.json   schema version, row counts per split, vocab sizes, split rule, config, input fingerprint
  train/          TRAIN_SCHEMA, one row per training window: the user's events, oldest first, at most max_len + 1
                  long (the model reads positions [:-1] and predicts positions [1:], those from first_target on
                  with a loss; windows.py says which)
  valid/ test/    EVAL_SCHEMA, one row per user: the last max_len events before the target, and the target
                  (test = valid with the valid target moved into the history)
  action_test/    TRAIN_SCHEMA: the windows holding the held-out events the next-action evaluation scores (from
                  first_target on): the test target under leave-one-out, every event in (cutoff, cutoff + horizon]
                  under split=time
  decay_valid/ decay_test/   DECAY_SCHEMA (split=time only), one row per user with a history up to the end of
                  observation (cutoff - horizon / cutoff): its last max_len events, the decay label, RFM features
  drift_valid/ drift_test/   DRIFT_SCHEMA, one row per user with a history (up to the valid / test target, or
                  up to cutoff - horizon / cutoff): its last data.drift_max_events events and the end of observation;
                  the interest-migration windows (early / recent, trajectory) are cut from them (drift.py)
  items/          ITEMS_SCHEMA, one row per in-vocabulary item id;  graph/  GRAPH_SCHEMA, one row per kept edge
  quarantine/     QUARANTINE_SCHEMA, every rejected input row with its reason
  planted/        PLANTED_SCHEMA (synthetic input only), the generator's planted interests per user: what the
                  interest tags are measured against
  vocab/          items/, categories/, event_types/: the id maps

Ids: item 0 = padding, 1 = out-of-vocabulary (a valid input, never a target or a recommendation), 2.. by
descending frequency in the training events (spark_jobs/vocab.py: only training counts decide which items get an
id; an item with catalog content always does); event type 0 = padding, 1.. in the configured order; category 0 = unknown.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from interest_core.data_versions import CURRENT, DataDirError, require_finished

SCHEMA_VERSION = 9  # 2: train rows carry first_target; equal timestamps keep the input's order
# 3: split=time validates on (cutoff - horizon, cutoff]; train rows end with a censoring marker, carry n_before and
#    first_ts; decay_valid/ decay_test/ rows
# 4: action_test/ windows (the next-action evaluation's held-out events)
# 5: valid/test rows carry the whole history's time-decayed interest categories (interest tags)
# 6: drift_valid/ drift_test/ rows (interest migration); planted/ carries migration_ts
# 7: quarantine/ keeps pseudonyms, fields and a hash of the row, never its text;
#    items/ carries description (the text the content tower embeds besides the title); manifest split.cold_items
# 8: train/valid/test/action_test rows carry user_features (interest etl --users); manifest users
# 9: the item vocabulary and the next-action prior (manifest counts.event_types_train) read training events only;
#    the cold-item holdout hashes the item's id

INTEREST_CATEGORIES = 20  # interest_categories / interest_weights kept per eval row

PAD_ID = 0
OOV_ID = 1
FIRST_ITEM_ID = 2
"""Ids 0 (padding) and 1 (OOV) are never candidates, targets or recommendations."""

_int_list, _long_list = pa.list_(pa.int32()), pa.list_(pa.int64())

_SEQUENCE = [
    pa.field("user_id", pa.string()),  # HMAC pseudonym, never the raw id
    pa.field("items", _int_list),
    pa.field("event_types", _int_list),
    pa.field("ts", _long_list),  # unix seconds, UTC
    pa.field("dt", _long_list),  # seconds since the previous event of the whole history (0 = first)
]

# one id per interest_core.user_features.USER_FIELDS (0 = unknown); empty when the data has no users file
_USER_FEATURES = pa.field("user_features", _int_list)

TRAIN_SCHEMA = pa.schema(_SEQUENCE + [
    pa.field("window", pa.int32()),  # 0 = most recent window of the user
    pa.field("first_target", pa.int32()),  # first position whose prediction carries a loss (windows.py)
    pa.field("n_before", pa.int32()),  # the user's events before the window's first one
    pa.field("first_ts", pa.int64()),  # time of the user's first event
    pa.field("days_before", pa.int32()),  # distinct UTC days with an event among those n_before events
    pa.field("buys_before", pa.int32()),  # buy events among them
    _USER_FEATURES,
])

EVAL_SCHEMA = pa.schema(_SEQUENCE + [
    pa.field("target_item", pa.int32()),
    pa.field("target_event_type", pa.int32()),
    pa.field("target_ts", pa.int64()),
    pa.field("target_category", pa.int32()),
    pa.field("history_len", pa.int32()),  # whole history, not only the last max_len
    pa.field("seen_items", _int_list),
    pa.field("top_categories", _int_list),  # historic top 3 known categories
    pa.field("time_since_last", pa.int64()),  # seconds from the last history event to the target
    pa.field("drift_score", pa.float64()),  # JS divergence of categories, early vs recent half of history
    pa.field("target_is_cold_item", pa.bool_()),  # target never in anyone's training events
    # the whole history's INTEREST_CATEGORIES known categories with the most time-decayed weight (half-life
    # data.tag_half_life_days, from the last history event; the target is not counted), and each one's share of
    # the total weight
    pa.field("interest_categories", _int_list),
    pa.field("interest_weights", pa.list_(pa.float64())),
    _USER_FEATURES,
])

DECAY_SCHEMA = pa.schema(_SEQUENCE + [
    pa.field("end_ts", pa.int64()),  # end of observation: cutoff - horizon (decay_valid) or cutoff (decay_test)
    pa.field("label", pa.int32()),  # 1 = any event in (end_ts, end_ts + horizon], else 0
    pa.field("history_len", pa.int32()),  # events up to end_ts (whole history)
    pa.field("n_before", pa.int32()),  # history events before the first one in items
    pa.field("first_ts", pa.int64()),  # time of the user's first event
    pa.field("days_before", pa.int32()),  # distinct UTC days with an event among those n_before events
    pa.field("buys_before", pa.int32()),  # buy events among them
    pa.field("recency_days", pa.float64()),  # end_ts - last event
    pa.field("frequency_90d", pa.int32()),  # events in (end_ts - 90 days, end_ts]
    pa.field("bg_x", pa.int32()),  # BG/NBD x: distinct UTC days with an event - 1 (repeat days)
    pa.field("bg_t_x", pa.float64()),  # BG/NBD t_x: days from the first to the last active UTC day
    pa.field("bg_T", pa.float64()),  # BG/NBD T: days from the start of the first active UTC day to end_ts
    pa.field("bought_items", _int_list),  # items with a buy event in the history
])

DRIFT_SCHEMA = pa.schema(_SEQUENCE + [
    pa.field("end_ts", pa.int64()),  # end of observation: V or C (split=time), the last history event (leave-one-out)
    pa.field("history_len", pa.int32()),  # events up to end_ts (whole history)
    pa.field("n_before", pa.int32()),  # history events before the first one in items
])

ITEMS_SCHEMA = pa.schema([
    pa.field("item_idx", pa.int32()),
    pa.field("item_id", pa.string()),
    pa.field("count", pa.int64()),
    pa.field("category", pa.string()),
    pa.field("category_idx", pa.int32()),
    pa.field("brand", pa.string()),
    pa.field("price", pa.float64()),
    pa.field("price_bucket", pa.int32()),  # 0 = unknown, b = price in [2^(b-1), 2^b)
    pa.field("title", pa.string()),
    pa.field("description", pa.string()),  # other catalog text: genres and year (RecBole .item), a description column
    pa.field("first_seen_ts", pa.int64()),
    pa.field("train_count", pa.int64()),  # occurrences in the training part of every history
])

GRAPH_SCHEMA = pa.schema([
    pa.field("src", pa.int32()),
    pa.field("dst", pa.int32()),
    pa.field("weight", pa.float64()),  # sum over co-occurrences of 1 / distance
    pa.field("rank", pa.int32()),  # 1 = strongest neighbour of src
])

QUARANTINE_SCHEMA = pa.schema([
    pa.field("reason", pa.string()),  # reason code, e.g. unparseable_ts
    pa.field("source", pa.string()),  # input file
    pa.field("position", pa.int64()),  # the row's position in the input (increasing within its file)
    pa.field("user_id", pa.string()),  # HMAC pseudonym of the row's user field (null when it has none): never raw
    pa.field("item_id", pa.string()),  # the other fields as read (strings, null when the row could not be split)
    pa.field("event_type", pa.string()),
    pa.field("ts", pa.string()),
    pa.field("session_id", pa.string()),
    pa.field("quantity", pa.string()),
    pa.field("price", pa.string()),
    pa.field("category", pa.string()),
    pa.field("raw_sha256", pa.string()),  # SHA-256 of the row as read: a row that could not be parsed may hold a
    #                                       raw user id anywhere, so its text is not kept; the hash finds it again
])

PLANTED_SCHEMA = pa.schema([
    pa.field("user_id", pa.string()),  # HMAC pseudonym, as in every split
    pa.field("interests", pa.list_(pa.string())),  # category paths of the interests at the end of the data
    pa.field("interests_before", pa.list_(pa.string())),  # before migration; null = the user did not migrate
    pa.field("migration_ts", pa.int64()),  # unix seconds of the migration; null = the user did not migrate
])

SHARD_SCHEMAS = {"train": TRAIN_SCHEMA, "action_test": TRAIN_SCHEMA, "valid": EVAL_SCHEMA, "test": EVAL_SCHEMA,
                 "decay_valid": DECAY_SCHEMA,
                 "decay_test": DECAY_SCHEMA, "drift_valid": DRIFT_SCHEMA, "drift_test": DRIFT_SCHEMA,
                 "items": ITEMS_SCHEMA,
                 "graph": GRAPH_SCHEMA, "quarantine": QUARANTINE_SCHEMA, "planted": PLANTED_SCHEMA}

TRAIN_COLUMNS = TRAIN_SCHEMA.names
EVAL_COLUMNS = EVAL_SCHEMA.names
DECAY_COLUMNS = DECAY_SCHEMA.names
DRIFT_COLUMNS = DRIFT_SCHEMA.names
ITEMS_COLUMNS = ITEMS_SCHEMA.names
GRAPH_COLUMNS = GRAPH_SCHEMA.names
QUARANTINE_COLUMNS = QUARANTINE_SCHEMA.names


def num_event_types(event_types: list[str]) -> int:
    """Event-type vocabulary size: the configured types (data.event_types) plus 0 = padding."""
    return len(event_types) + 1


def load_manifest(data_dir: str | Path) -> dict:
    """manifest.json of a finished ETL output; refuses unfinished directories and unknown schema versions."""
    d = Path(data_dir)
    if (d / CURRENT).exists():  # a reader must pick the version first, and read every file from that one
        raise DataDirError(f"{d} is a versioned ETL output: read its current version, "
                           f"interest_core.data_versions.resolve_data_dir({str(d)!r})")
    if not d.exists():
        raise DataDirError(f"{d} does not exist: a data version is deleted by a later ETL once no existing run "
                           f"refers to it. Give --data with the ETL's output directory, or rerun the ETL")
    require_finished(d)
    manifest = json.loads((d / "manifest.json").read_text())
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataDirError(f"{d}: shard schema version {version!r} is not one this version reads "
                           f"([{SCHEMA_VERSION}]); rerun the ETL with this version of interest-trainer")
    return manifest


def item_categories(data_dir: str | Path, num_items: int) -> "np.ndarray":
    """(num_items,) int64: the category id of every item id (0 = unknown, padding, OOV), from items/."""
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(Path(data_dir) / "items", columns=["item_idx", "category_idx"])
    out = np.zeros(num_items, dtype=np.int64)
    out[t.column("item_idx").to_numpy()] = t.column("category_idx").to_numpy()
    return out


def split_files(data_dir: str | Path, split: str) -> list[str]:
    """The Parquet files of one split, sorted (the order every reader deals rows in)."""
    files = sorted(str(p) for p in (Path(data_dir) / split).glob("*.parquet"))
    if not files:
        raise DataDirError(f"{data_dir}/{split}: no Parquet files")
    return files


def vocab_fingerprint(data_dir: str | Path, manifest: dict) -> str:
    """SHA-256 over the item vocabulary (item_idx, item_id) and the event types: a model's scores are meaningful
    only on data with the same ids."""
    import hashlib

    import pyarrow.parquet as pq

    t = pq.read_table(Path(data_dir) / "vocab" / "items", columns=["item_idx", "item_id"]).sort_by("item_idx")
    h = hashlib.sha256("\x1f".join(manifest["vocab"]["event_types"]).encode())
    for idx, item in zip(t.column("item_idx").to_pylist(), t.column("item_id").to_pylist()):
        h.update(f"\x1e{idx}\x1f{item}".encode())
    return h.hexdigest()


def data_fingerprint(manifest: dict) -> str:
    """SHA-256 over what made a data set (input files' names and sizes, the data config, row counts, vocabulary
    sizes, split): a rerun of the same ETL on the same input gives the same fingerprint, anything else another."""
    import hashlib

    keys = {k: manifest.get(k) for k in ("input", "rows", "vocab", "split", "schema_version")}
    keys["data_config"] = manifest.get("config", {}).get("data")
    keys["input"] = {k: v for k, v in (keys["input"] or {}).items() if k != "path"}  # a moved copy is the same data
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()


def check_same_data(run: dict, data_dir: str | Path, manifest: dict, explicit: bool) -> None:
    """Refuses to score a run on data it was not trained on, naming what differs: another vocabulary always; other
    data with the same vocabulary (e.g. the ETL re-ran on new events) unless --data was given explicitly."""
    want = run.get("data")
    if not want:  # a run from before fingerprints: nothing to compare
        return
    vocab = vocab_fingerprint(data_dir, manifest)
    if vocab != want["vocab_fingerprint"]:
        raise DataDirError(
            f"{data_dir}: its item vocabulary (num_items {manifest['vocab']['num_items']}, fingerprint {vocab[:12]}) "
            f"is not the run's (num_items {run.get('manifest', {}).get('vocab', {}).get('num_items')}, "
            f"{want['vocab_fingerprint'][:12]}): the model's item ids would mean other items. Evaluate on the data "
            f"the run trained on, or train on this data")
    if not explicit and data_fingerprint(manifest) != want["fingerprint"]:
        raise DataDirError(
            f"{data_dir} changed since the run trained on it (data fingerprint {data_fingerprint(manifest)[:12]}, "
            f"run {want['fingerprint'][:12]}; e.g. the ETL ran again): its vocabulary is the same, so pass --data "
            f"{data_dir} to use it anyway, or train again")
