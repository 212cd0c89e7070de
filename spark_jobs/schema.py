"""The shard format, defined once. Spark writes it (StructTypes below); the trainer reads the same field lists.

Shard layout under the data directory:
  train/   one row per training window: the user's events, oldest first, at most max_len + 1 long
           (the model reads positions [:-1] and predicts positions [1:]).
  valid/   one row per user: history (last max_len events before the target) and the held-out target.
  test/    same as valid, with the valid target moved into the history.
  items/   one row per vocabulary item id; graph/ one row per kept item-item edge.
Ids: item 0 = padding, 1 = out-of-vocabulary, 2.. by descending frequency; event type 0 = padding.
"""
from __future__ import annotations

from pyspark.sql import types as T

SCHEMA_VERSION = 1

PAD_ID = 0
OOV_ID = 1

# Canonical event schema after ingest (DESIGN.md).
EVENTS = T.StructType([
    T.StructField("user_id", T.StringType(), False),
    T.StructField("item_id", T.StringType(), False),
    T.StructField("event_type", T.StringType(), False),
    T.StructField("ts", T.LongType(), False),  # unix seconds, UTC
    T.StructField("session_id", T.StringType(), True),
    T.StructField("quantity", T.DoubleType(), True),
    T.StructField("price", T.DoubleType(), True),
])

QUARANTINE = T.StructType([
    T.StructField("reason", T.StringType(), False),
    T.StructField("source", T.StringType(), True),
    T.StructField("raw", T.StringType(), True),
])

_SEQ = [
    T.StructField("user_id", T.StringType(), False),  # HMAC pseudonym, never the raw id
    T.StructField("items", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("event_types", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("ts", T.ArrayType(T.LongType(), False), False),
    T.StructField("dt", T.ArrayType(T.LongType(), False), False),  # seconds since the previous event (0 = first)
]

TRAIN = T.StructType(_SEQ + [
    T.StructField("window", T.IntegerType(), False),  # 0 = most recent window of the user
])

EVAL = T.StructType(_SEQ + [
    T.StructField("target_item", T.IntegerType(), False),
    T.StructField("target_event_type", T.IntegerType(), False),
    T.StructField("target_ts", T.LongType(), False),
    T.StructField("target_category", T.IntegerType(), False),
    T.StructField("history_len", T.IntegerType(), False),  # whole history, not only the last max_len
    T.StructField("seen_items", T.ArrayType(T.IntegerType(), False), False),
    T.StructField("top_categories", T.ArrayType(T.IntegerType(), False), False),  # historic top 3
    T.StructField("time_since_last", T.LongType(), False),  # seconds from last history event to split point
    T.StructField("drift_score", T.DoubleType(), False),  # JS divergence, early vs recent half of history
    T.StructField("target_is_cold_item", T.BooleanType(), False),  # target never in this user's or anyone's training
    T.StructField("decay_label", T.IntegerType(), True),  # split=time: active in (cutoff, cutoff+horizon]; else null
    T.StructField("censored", T.BooleanType(), True),
])

ITEMS = T.StructType([
    T.StructField("item_idx", T.IntegerType(), False),
    T.StructField("item_id", T.StringType(), True),
    T.StructField("count", T.LongType(), False),
    T.StructField("category", T.StringType(), True),
    T.StructField("category_idx", T.IntegerType(), False),
    T.StructField("brand", T.StringType(), True),
    T.StructField("price", T.DoubleType(), True),
    T.StructField("price_bucket", T.IntegerType(), False),
    T.StructField("title", T.StringType(), True),
    T.StructField("first_seen_ts", T.LongType(), True),
    T.StructField("train_count", T.LongType(), False),
])

GRAPH = T.StructType([
    T.StructField("src", T.IntegerType(), False),
    T.StructField("dst", T.IntegerType(), False),
    T.StructField("weight", T.DoubleType(), False),
    T.StructField("rank", T.IntegerType(), False),
])

TRAIN_COLUMNS = [f.name for f in TRAIN.fields]
EVAL_COLUMNS = [f.name for f in EVAL.fields]
