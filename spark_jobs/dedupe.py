"""Dedupe exact duplicate events (same user, item, event type and ts) while grouping events by user.

Both need the same shuffle (by user), so they happen in one: each user's events are collected, exact duplicates
dropped keeping the first occurrence in the input, and the rest sorted by (ts, position in the input), so events
with equal timestamps keep the input's order (the last of a tie is the one the input lists last, as every
reference trainer reads it). `n_raw` keeps the count before dedupe so the manifest reconciles
(rows_valid = rows_used + rows_deduplicated).
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def user_event_lists(events: DataFrame, sessions: bool = False) -> DataFrame:
    """user_id, ev: array<struct<ts, src_file, src_row, item_id, event_type>> (distinct, in input order within a
    timestamp; with sessions, each event's session_id too, its first occurrence's: what the basket rule of
    sequences.basket_starts reads), n_raw: events before dedupe."""
    # One shuffle, by user: the events are hash-partitioned by user_id, which already clusters them for both
    # aggregations below (by event, then by user), so neither shuffles again. Dropping duplicates is a hash
    # aggregation keeping each event's first input position; the list is then sorted by (ts, position) natively.
    by_user = events.repartition("user_id")
    at = ["src_file", "src_row", *(["session_id"] if sessions else [])]
    distinct = by_user.groupBy("user_id", "item_id", "event_type", "ts").agg(
        F.min(F.struct(*at)).alias("at"), F.count(F.lit(1)).alias("n"))
    ev = F.struct("ts", F.col("at.src_file").alias("src_file"), F.col("at.src_row").alias("src_row"), "item_id",
                  "event_type", *([F.col("at.session_id").alias("session_id")] if sessions else []))
    return distinct.groupBy("user_id").agg(F.array_sort(F.collect_list(ev)).alias("ev"),
                                           F.sum("n").cast("int").alias("n_raw"))
