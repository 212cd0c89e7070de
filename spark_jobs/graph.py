"""Item co-occurrence graph from training events only (no valid/test target ever creates an edge).

Each event is paired with the next `window` events of the same user that lie within `max_gap_s`; a pair at
distance d adds 1/d to the weight of both directions. Each item keeps its top-K neighbours by weight
(ties by neighbour id), self-pairs and the OOV id excluded.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.schema import OOV_ID


def cooccurrence_pairs(split: DataFrame, window: int, max_gap_s: int) -> DataFrame:
    """lo, hi, w for every unordered pair occurrence (lo < hi), before aggregation.

    Pairs are built inside each user's array and only (lo, hi, 1/d) leaves it: aggregating unordered pairs and
    mirroring afterwards moves half the rows of aggregating both directions.
    """
    ev = F.col("train_ev")
    m = F.size(ev)

    def pair(i: Column, j: Column) -> Column:
        a, b = F.element_at(ev, i), F.element_at(ev, j)
        x, y = a["item_idx"], b["item_idx"]
        keep = (b["ts"] - a["ts"] <= max_gap_s) & (x != y) & (x > OOV_ID) & (y > OOV_ID)
        return F.when(keep, F.struct(F.least(x, y).alias("lo"), F.greatest(x, y).alias("hi"),
                                     (1.0 / (j - i)).alias("w")))

    pairs = F.flatten(F.transform(F.sequence(F.lit(1), m - 1), lambda i: F.transform(
        F.sequence(i + 1, F.least(m, i + window)), lambda j: pair(i, j))))
    df = split.where(ev.isNotNull() & (m >= 2)).select(F.explode(F.filter(pairs, lambda p: p.isNotNull())).alias("p"))
    return df.select("p.lo", "p.hi", "p.w")


def item_graph(split: DataFrame, window: int, max_gap_s: int, top_k: int) -> DataFrame:
    """schema.GRAPH: src, dst, weight, rank (1 = strongest)."""
    undirected = cooccurrence_pairs(split, window, max_gap_s).groupBy("lo", "hi").agg(F.sum("w").alias("weight"))
    agg = undirected.select(F.col("lo").alias("src"), F.col("hi").alias("dst"), "weight").unionByName(
        undirected.select(F.col("hi").alias("src"), F.col("lo").alias("dst"), "weight"))
    rank = F.row_number().over(Window.partitionBy("src").orderBy(F.desc("weight"), F.asc("dst")))
    return agg.withColumn("rank", rank.cast("int")).where(F.col("rank") <= top_k).select(
        F.col("src").cast("int"), F.col("dst").cast("int"), F.col("weight").cast("double"), "rank")
