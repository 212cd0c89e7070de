"""Dedupe exact duplicate events (same user, item, event type and ts) while grouping events by user.

Both need the same shuffle (by user), so they happen in one: each user's events are collected, exact duplicates
dropped with array_distinct, and the rest sorted by (ts, item_id, event_type), which makes ties deterministic.
`n_raw` keeps the count before dedupe so the manifest reconciles (rows_valid = rows_used + rows_deduplicated).
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def user_event_lists(events: DataFrame) -> DataFrame:
    """user_id, ev: array<struct<ts, item_id, event_type>> (distinct, sorted), n_raw: events before dedupe."""
    lists = events.groupBy("user_id").agg(
        F.collect_list(F.struct("ts", "item_id", "event_type")).alias("all"))
    return lists.select("user_id", F.array_sort(F.array_distinct("all")).alias("ev"),
                        F.size("all").alias("n_raw"))
