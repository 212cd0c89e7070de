"""Dedupe exact duplicate events: same user, item, event type and timestamp (the first-seen extra fields win)."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

EVENT_KEY = ["user_id", "item_id", "event_type", "ts"]


def dedupe(events: DataFrame) -> DataFrame:
    # A deterministic choice among duplicates (smallest remaining fields) keeps reruns byte-identical.
    rest = [c for c in events.columns if c not in EVENT_KEY]
    if not rest:
        return events.dropDuplicates(EVENT_KEY)
    agg = events.groupBy(*EVENT_KEY).agg(F.min(F.struct(*rest)).alias("_rest"))
    return agg.select(*EVENT_KEY, *[F.col("_rest")[c].alias(c) for c in rest])
