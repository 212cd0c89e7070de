"""Vocabularies: items by frequency (rarer than min_count -> OOV id 1), categories, event types.

Ids are stable across reruns on the same input: ordering is (count desc, id asc), never partition order.
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


def item_counts(lists: DataFrame) -> DataFrame:
    """item_id, count, first_seen_ts over the deduped per-user event lists (a partial aggregation per item)."""
    ev = lists.select(F.explode("ev").alias("e"))
    return ev.groupBy(F.col("e.item_id").alias("item_id")).agg(
        F.count(F.lit(1)).alias("count"), F.min("e.ts").alias("first_seen_ts"))


def item_vocab(counts: DataFrame, min_count: int, catalog: DataFrame | None = None) -> DataFrame:
    """item_id, count, item_idx (2.. for frequent items, OOV_ID for the rest), from item_counts' output; catalog
    (item_id): items without events that join the vocabulary after every frequent item, by id, with count 0."""
    counts = counts.select("item_id", "count")
    frequent = _index(counts.where(F.col("count") >= min_count), [F.desc("count"), F.asc("item_id")],
                      OOV_ID + 1, "item_idx").persist()
    rare = counts.where(F.col("count") < min_count).withColumn("item_idx", F.lit(OOV_ID))
    out = frequent.unionByName(rare)
    if catalog is None:
        return out
    only = (catalog.select("item_id").where(F.col("item_id").isNotNull()).distinct()
            .join(counts.select("item_id"), "item_id", "left_anti").withColumn("count", F.lit(0).cast("long")))
    return out.unionByName(_index(only, [F.asc("item_id")], OOV_ID + 1 + frequent.count(), "item_idx"))


def category_vocab(categories: DataFrame) -> DataFrame:
    """category (string), category_idx: 0 = unknown, 1.. by frequency."""
    counts = categories.where(F.col("category").isNotNull()).groupBy("category").agg(F.count(F.lit(1)).alias("n"))
    return _index(counts, [F.desc("n"), F.asc("category")], 1, "category_idx").drop("n")


def event_type_vocab(spark: SparkSession, event_types: list[str]) -> DataFrame:
    """event_type, event_type_idx: 1.. in the configured order (0 = padding)."""
    return spark.createDataFrame([(t, i + 1) for i, t in enumerate(event_types)], "event_type string, event_type_idx int")
