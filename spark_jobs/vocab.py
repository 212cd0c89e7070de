"""Vocabularies: items by training frequency (rarer than min_count in the training events and without catalog
content -> OOV id 1), categories, event types.

Ids are stable across reruns on the same input: ordering is (training count desc, id asc), never partition order.
Only training events (the split's train_ev, after the holdouts) decide which items get an id: whether a valid or
test target can be ranked never depends on valid- or test-period counts.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from interest_core.contract import OOV_ID


def _index(df: DataFrame, order: list, first_id: int, name: str) -> DataFrame:
    # zipWithIndex assigns consecutive ids over a global sort without pulling rows into one partition.
    spark = df.sparkSession
    ordered = df.orderBy(*order)
    schema = T.StructType(ordered.schema.fields + [T.StructField(name, T.IntegerType(), False)])
    rdd = ordered.rdd.zipWithIndex().map(lambda r: (*r[0], int(r[1]) + first_id))
    return spark.createDataFrame(rdd, schema)


def item_counts(lists: DataFrame, split: DataFrame, event_types: list[str]) -> DataFrame:
    """item_id, count, first_seen_ts over every deduped event of the per-user lists; train_count and train_type_{i}
    (the events of event_types[i]) over the training events (split's train_ev: sequences.split_and_hold_out of the
    same lists). One aggregation per item over both."""
    ev = lists.select(F.explode("ev").alias("e"), F.lit(False).alias("t"))
    tr = split.where(F.col("train_ev").isNotNull()).select(F.explode("train_ev").alias("e"), F.lit(True).alias("t"))
    both = ev.unionByName(tr).select(F.col("e.item_id").alias("item_id"), F.col("e.ts").alias("ts"),
                                     F.col("e.event_type").alias("event_type"), "t")
    train = F.col("t")
    return both.groupBy("item_id").agg(
        F.count_if(~train).alias("count"), F.min(F.when(~train, F.col("ts"))).alias("first_seen_ts"),
        F.count_if(train).alias("train_count"),
        *[F.count_if(train & (F.col("event_type") == t)).alias(f"train_type_{i}") for i, t in enumerate(event_types)])


def train_event_type_counts(counts: DataFrame, event_types: list[str]) -> dict[str, int]:
    """{event type: training events of that type} from item_counts' output (a sum over its one row per item)."""
    row = counts.agg(*[F.sum(f"train_type_{i}").alias(f"s{i}") for i in range(len(event_types))]).first()
    return {t: int(row[f"s{i}"] or 0) for i, t in enumerate(event_types)}


def content_items(catalog: DataFrame) -> DataFrame:
    """item_id of the catalog's items with content the content tower reads (a title, a description or a category)."""
    has = lambda c: F.col(c).isNotNull() & (F.trim(F.col(c).cast("string")) != "")  # noqa: E731
    return catalog.where(F.col("item_id").isNotNull() & (has("title") | has("description") | has("category"))) \
        .select("item_id").distinct()


def item_vocab(counts: DataFrame, min_count: int, catalog: DataFrame | None = None,
               content: DataFrame | None = None) -> DataFrame:
    """item_id, count, item_idx, from item_counts' output: ids 2.. for the items with at least min_count training
    events or with catalog content (content: content_items' ids, so that an item without training events, a
    cold-holdout item or one first seen in the test period, stays rankable through its content), ordered by
    (training count desc, id asc); OOV_ID for the rest. catalog (item_id): items without events that join the
    vocabulary after those, by id, with count 0."""
    counts = counts.select("item_id", "count", "train_count")
    keep = F.col("train_count") >= min_count
    if content is not None:
        counts = counts.join(content.select("item_id", F.lit(True).alias("_content")), "item_id", "left")
        keep = keep | F.col("_content").isNotNull()
    frequent = _index(counts.where(keep).select("item_id", "count", "train_count"),
                      [F.desc("train_count"), F.asc("item_id")], OOV_ID + 1, "item_idx").drop("train_count")
    n_frequent = frequent.count()
    rare = counts.where(~keep).select("item_id", "count", F.lit(OOV_ID).alias("item_idx"))
    out = frequent.unionByName(rare)
    if catalog is None:
        return out
    only = (catalog.select("item_id").where(F.col("item_id").isNotNull()).distinct()
            .join(counts.select("item_id"), "item_id", "left_anti").withColumn("count", F.lit(0).cast("long")))
    return out.unionByName(_index(only, [F.asc("item_id")], OOV_ID + 1 + n_frequent, "item_idx"))


def category_vocab(categories: DataFrame) -> DataFrame:
    """category (string), category_idx: 0 = unknown, 1.. by frequency."""
    counts = categories.where(F.col("category").isNotNull()).groupBy("category").agg(F.count(F.lit(1)).alias("n"))
    return _index(counts, [F.desc("n"), F.asc("category")], 1, "category_idx").drop("n")


def event_type_vocab(spark: SparkSession, event_types: list[str]) -> DataFrame:
    """event_type, event_type_idx: 1.. in the configured order (0 = padding)."""
    return spark.createDataFrame([(t, i + 1) for i, t in enumerate(event_types)], "event_type string, event_type_idx int")
