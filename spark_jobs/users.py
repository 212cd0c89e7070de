"""User side features (`interest etl --users FILE`): read a users file, one row per user by a stated rule, hashed
feature ids (interest_core/user_features.py), joined onto the per-user sequences by pseudonym.

Formats: a RecBole .user file (tab-separated, `name:type` headers; its zip_code is the region), CSV with a header,
JSON lines (.json/.jsonl) or Parquet (a file or a directory). Columns are found by their canonical names
(user_id, age, gender, occupation, region) or through --users-map canonical=column. Rules, each counted in the
manifest's `users` section: a row without a user id is quarantined (reason users_file_no_user_id, its SHA-256
kept, never its text); a user listed more than once keeps their last row (files by path, rows in order); a value
that cannot be used (an age that is not a number in [1, 120]) is unknown (id 0); a users row whose user has no
event is not used. Raw user ids never leave this module: the join key is the events' HMAC pseudonym.
"""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from interest_core.contract import QUARANTINE_COLUMNS
from interest_core.user_features import AGE_EDGES, AGE_GROUPS, REGION_CHARS, USER_FIELDS
from spark_jobs.pseudonymize import pseudonymize_users

CANONICAL = ("user_id", *USER_FIELDS)
NO_ID_REASON = "users_file_no_user_id"


def parse_users_map(spec: str | None) -> dict[str, str]:
    """"age=AGE,region=zip" -> {"age": "AGE", "region": "zip"}; unknown canonical names are refused."""
    out: dict[str, str] = {}
    for part in filter(None, (spec or "").split(",")):
        canonical, sep, source = part.partition("=")
        if not sep or canonical.strip() not in CANONICAL or not source.strip():
            raise ValueError(f"--users-map {part!r}: expected canonical=column with canonical one of {CANONICAL}")
        out[canonical.strip()] = source.strip()
    return out


def read_users(spark: SparkSession, path: str, column_map: dict[str, str] | None = None) -> DataFrame:
    """user_id (raw), age, gender, occupation, region (strings, null when the file lacks the column), users_file,
    users_row, users_sha256 (SHA-256 of the row as read)."""
    column_map = dict(column_map or {})
    p = Path(path)
    if path.endswith(".user"):
        df = spark.read.option("sep", "\t").option("header", True).csv(path)
        df = df.toDF(*[c.split(":")[0] for c in df.columns])
        column_map.setdefault("region", "zip_code")
    elif path.endswith(".parquet") or p.is_dir():
        df = spark.read.parquet(path)
    elif path.endswith((".json", ".jsonl")):
        df = spark.read.json(path)
    else:
        df = spark.read.option("header", True).csv(path)
    src = {c: column_map.get(c, c) for c in CANONICAL}
    if src["user_id"] not in df.columns:
        raise ValueError(f"--users {path}: no user id column {src['user_id']!r} (columns {df.columns}); "
                         f"pass --users-map user_id=<your column>")
    missing = [c for c in src if c != "user_id" and c in column_map and column_map[c] not in df.columns]
    if missing:
        raise ValueError(f"--users-map names columns the file lacks: {[column_map[c] for c in missing]} "
                         f"(columns {df.columns})")
    row = F.sha2(F.to_json(F.struct(*[F.col(c) for c in df.columns])), 256)
    return df.select(
        *[(F.col(s).cast("string") if s in df.columns else F.lit(None).cast("string")).alias(c) for c, s in src.items()],
        F.input_file_name().alias("users_file"), F.monotonically_increasing_id().alias("users_row"),
        row.alias("users_sha256"))


def quarantined(users: DataFrame) -> DataFrame:
    """Rows without a user id as quarantine records (contract.QUARANTINE_SCHEMA)."""
    bad = users.where(F.col("user_id").isNull() | (F.trim(F.col("user_id")) == ""))
    fields = {"reason": F.lit(NO_ID_REASON), "source": F.col("users_file"), "position": F.col("users_row"),
              "raw_sha256": F.col("users_sha256")}
    return bad.select(*[fields.get(c, F.lit(None).cast("string")).alias(c) for c in QUARANTINE_COLUMNS]).select(
        *[F.col(c).cast("long") if c == "position" else F.col(c) for c in QUARANTINE_COLUMNS])


def one_row_per_user(users: DataFrame) -> DataFrame:
    """Rows with a user id, the last row of each user (files by path, rows in order)."""
    last = Window.partitionBy("user_id").orderBy(F.col("users_file").desc(), F.col("users_row").desc())
    return (users.where(F.col("user_id").isNotNull() & (F.trim(F.col("user_id")) != ""))
            .withColumn("user_id", F.trim(F.col("user_id")))
            .withColumn("_n", F.row_number().over(last)).where(F.col("_n") == 1).drop("_n"))


def _age_group(age: Column) -> Column:
    a = age.try_cast("double")  # ANSI mode: a plain cast fails the job on "abc"
    group = F.lit(AGE_GROUPS[-1])
    for edge, name in reversed(list(zip(AGE_EDGES, AGE_GROUPS))):
        group = F.when(a < edge, F.lit(name)).otherwise(group)
    return F.when(a.isNull() | (a < 1) | (a > 120), F.lit(None)).otherwise(group)


def _value(name: str, col: Column) -> Column:
    """The feature's value string (interest_core.user_features: age group, region = a code's first characters)."""
    if name == "age":
        return _age_group(col)
    if name == "region":  # interest_core.user_features.region_value
        value = F.trim(col)
        return F.when(value.rlike("[0-9]"), F.substring(value, 1, REGION_CHARS)).otherwise(value)
    return col


def _feature_id(name: str, value: Column, buckets: int) -> Column:
    """interest_core.user_features.feature_id in Spark: crc32("name=value") % buckets + 1, 0 for none."""
    v = F.lower(F.trim(value))
    crc = F.crc32(F.encode(F.concat(F.lit(f"{name}="), v), "UTF-8"))
    return F.when(v.isNull() | (v == ""), F.lit(0)).otherwise(crc % buckets + 1).cast("int")


def user_feature_ids(users: DataFrame, buckets: int) -> DataFrame:
    """One row per user (one_row_per_user's output) -> user_id, user_features array<int> (USER_FIELDS order),
    unusable: array<string> of the features whose non-empty value could not be used."""
    values = {c: _value(c, F.col(c)) for c in USER_FIELDS}
    unusable = [F.when(F.col(c).isNotNull() & (F.trim(F.col(c)) != "") & values[c].isNull(), F.lit(c))
                for c in USER_FIELDS]
    return users.select("user_id", F.array(*[_feature_id(c, values[c], buckets) for c in USER_FIELDS])
                        .alias("user_features"), F.filter(F.array(*unusable), lambda x: x.isNotNull())
                        .alias("unusable"))


def attach(split: DataFrame, features: DataFrame | None) -> DataFrame:
    """The per-user frame with a user_features column (the user's ids, zeros for a user without a users row, an
    empty list for every user when the data has no users file) and users_row (whether the user has a row)."""
    if features is None:
        return split.withColumn("user_features", F.array().cast("array<int>")).withColumn("users_row", F.lit(False))
    zeros = F.array(*[F.lit(0)] * len(USER_FIELDS))
    return (split.join(features.select("user_id", "user_features", F.lit(True).alias("users_row")), "user_id", "left")
            .withColumn("user_features", F.coalesce(F.col("user_features"), zeros))
            .withColumn("users_row", F.coalesce(F.col("users_row"), F.lit(False))))


def users_with_events(attached: DataFrame) -> int:
    """How many users of attach's output (the users with events) have a users row."""
    return attached.where(F.col("users_row")).count()


def build(spark: SparkSession, path: str, column_map: dict[str, str], buckets: int,
          key: bytes) -> tuple[DataFrame, DataFrame, dict]:
    """(pseudonymized per-user features, persisted; quarantine records; manifest counts). The users file is read
    once per count rather than cached: it is small, and a cache the features depend on could not be released
    before them (Spark rebuilds the dependants of an unpersisted frame)."""
    return build_from_rows(read_users(spark, path, column_map), buckets, key)


def build_from_rows(raw: DataFrame, buckets: int, key: bytes) -> tuple[DataFrame, DataFrame, dict]:
    """build's work on rows shaped like read_users' (a users file, or a format's own users: online_retail.users)."""
    rows = raw.count()
    quarantine = quarantined(raw)
    unique = one_row_per_user(raw)
    feats = pseudonymize_users(user_feature_ids(unique, buckets), key).persist()
    n_users = feats.count()
    no_id = quarantine.count()
    unusable = {r["f"]: r["count"] for r in feats.select(F.explode("unusable").alias("f")).groupBy("f").count()
                .collect()}
    counts = {"rows": rows, "rows_without_user_id": no_id, "duplicate_rows": rows - no_id - n_users,
              "users": n_users, "unusable_values": dict(sorted(unusable.items())),
              "features": list(USER_FIELDS), "buckets": buckets}
    return feats.drop("unusable"), quarantine, counts
