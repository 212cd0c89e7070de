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


def user_event_lists(events: DataFrame) -> DataFrame:
    """user_id, ev: array<struct<ts, src_file, src_row, item_id, event_type>> (distinct, in input order within a
    timestamp), n_raw: events before dedupe."""
    # The sorted array is a column before the filter reads it: an expression inside the lambda would be re-sorted
    # for every element (quadratic in the user's events; a bot with 1M events would never finish).
    grouped = events.groupBy("user_id").agg(
        F.array_sort(F.collect_list(F.struct("ts", "item_id", "event_type", "src_file", "src_row"))).alias("srt"))
    # Sorted by (ts, item_id, event_type, position): duplicates are adjacent, their first occurrence first.
    srt = F.col("srt")
    same_as_previous = lambda e, i: (  # noqa: E731
        (e["ts"] == F.get(srt, i - 1)["ts"]) & (e["item_id"] == F.get(srt, i - 1)["item_id"])
        & (e["event_type"] == F.get(srt, i - 1)["event_type"]))
    distinct = F.filter(srt, lambda e, i: (i == 0) | ~same_as_previous(e, i))
    ordered = F.array_sort(F.transform(distinct, lambda e: F.struct(
        e["ts"].alias("ts"), e["src_file"].alias("src_file"), e["src_row"].alias("src_row"),
        e["item_id"].alias("item_id"), e["event_type"].alias("event_type"))))
    return grouped.select("user_id", ordered.alias("ev"), F.size("srt").alias("n_raw"))
