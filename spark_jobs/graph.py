"""Item co-occurrence graph from training events only (no valid/test target ever creates an edge).

Each event is paired with the next `window` events of the same user that lie within `max_gap_s`; a pair at
distance d adds 1/d to the weight of both directions. Each item keeps its top-K neighbours by weight
(ties by neighbour id), self-pairs and the OOV id excluded.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.schema import OOV_ID


def cooccurrence_pairs(split: DataFrame, window: int, max_gap_s: int) -> DataFrame:
    """src, dst, w for every directed pair (before aggregation)."""
    ev = F.col("train_ev")
    m = F.size(ev)
    pairs = F.flatten(F.transform(F.sequence(F.lit(1), m - 1), lambda i: F.transform(
        F.sequence(i + 1, F.least(m, i + window)),
        lambda j: F.struct(F.element_at(ev, i).alias("a"), F.element_at(ev, j).alias("b"),
                           (j - i).alias("d")))))
    df = split.where(ev.isNotNull() & (m >= 2)).select(F.explode(pairs).alias("p"))
    df = df.where((F.col("p.b").isNotNull()) & (F.col("p.b.ts") - F.col("p.a.ts") <= max_gap_s))
    df = df.select(F.col("p.a.item_idx").alias("x"), F.col("p.b.item_idx").alias("y"),
                   (1.0 / F.col("p.d")).alias("w"))
    df = df.where((F.col("x") != F.col("y")) & (F.col("x") > OOV_ID) & (F.col("y") > OOV_ID))
    both = df.select(F.col("x").alias("src"), F.col("y").alias("dst"), "w").unionByName(
        df.select(F.col("y").alias("src"), F.col("x").alias("dst"), "w"))
    return both


def item_graph(split: DataFrame, window: int, max_gap_s: int, top_k: int) -> DataFrame:
    """schema.GRAPH: src, dst, weight, rank (1 = strongest)."""
    agg = cooccurrence_pairs(split, window, max_gap_s).groupBy("src", "dst").agg(F.sum("w").alias("weight"))
    rank = F.row_number().over(Window.partitionBy("src").orderBy(F.desc("weight"), F.asc("dst")))
    return agg.withColumn("rank", rank.cast("int")).where(F.col("rank") <= top_k).select(
        F.col("src").cast("int"), F.col("dst").cast("int"), F.col("weight").cast("double"), "rank")
