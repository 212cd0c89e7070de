"""Item features: category path, brand, price bucket, title, first-seen time and training count per item id.

Price buckets are log2-spaced (bucket b holds prices in [2^(b-1), 2^b)), so they need no global quantiles and
are stable across data sets; 0 = unknown price.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from interest_core.contract import ITEMS_COLUMNS, OOV_ID


def one_row_per_item(catalog: DataFrame) -> DataFrame:
    """The rule for an item listed more than once: its last row wins (a catalog's later row updates an earlier one),
    in the order of the catalog's files by path, then of rows in a file. Returns the catalog columns only."""
    from pyspark.sql import Window

    last = Window.partitionBy("item_id").orderBy(F.col("catalog_file").desc(), F.col("catalog_row").desc())
    return (catalog.withColumn("_n", F.row_number().over(last)).where(F.col("_n") == 1)
            .drop("_n", "catalog_file", "catalog_row"))


def catalog_from_events(events: DataFrame) -> DataFrame:
    """Item catalog derived from event columns (Taobao carries category_id, price may ride on events)."""
    return events.groupBy("item_id").agg(F.lit("").alias("catalog_file"), F.lit(0).cast("long").alias("catalog_row"),
        F.mode("category", deterministic=True).alias("category"),
        F.lit(None).cast("string").alias("brand"),
        F.expr("percentile_approx(price, 0.5)").cast("double").alias("price"),
        F.lit(None).cast("string").alias("title"), F.lit(None).cast("string").alias("description"))


def price_bucket(price) -> F.Column:
    return F.when(price.isNull() | (price <= 0), F.lit(0)).otherwise(
        F.least(F.lit(31), F.floor(F.log2(price + 1)).cast("int") + 1)).cast("int")


def item_features(vocab: DataFrame, catalog: DataFrame | None, categories: DataFrame,
                  first_seen: DataFrame, train_counts: DataFrame) -> DataFrame:
    """contract.ITEMS_SCHEMA, one row per in-vocabulary item (ids >= 2)."""
    df = vocab.where(F.col("item_idx") > OOV_ID)
    if catalog is not None:
        df = df.join(catalog, on="item_id", how="left")
    else:
        df = df.select("*", *[F.lit(None).cast(t).alias(c) for c, t in
                              [("category", "string"), ("brand", "string"), ("price", "double"),
                               ("title", "string"), ("description", "string")]])
    df = df.join(categories, on="category", how="left")
    df = df.join(first_seen, on="item_id", how="left")
    df = df.join(train_counts, on="item_idx", how="left")
    return df.select(
        F.col("item_idx").cast("int"), "item_id", F.col("count").cast("long"), "category",
        F.coalesce(F.col("category_idx"), F.lit(0)).cast("int").alias("category_idx"), "brand",
        F.col("price").cast("double"), price_bucket(F.col("price")).alias("price_bucket"), "title", "description",
        F.col("first_seen_ts").cast("long"),
        F.coalesce(F.col("train_count"), F.lit(0)).cast("long").alias("train_count"),
    ).select(*ITEMS_COLUMNS)
