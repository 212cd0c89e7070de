"""Ingest: read every supported input format into one *raw* frame of string columns.

Nothing is interpreted here beyond splitting records into fields; `validate` decides what is usable. Each raw row
keeps its original content (`raw`) and file (`source`) so a rejected row can be quarantined with it.

Raw frame columns: raw, source, src_file, src_row, parse_error (reason code or null), user_id, item_id, event_type,
ts, session_id, quantity, price, category (strings, possibly null). (src_file, src_row) is the row's position in the
input: the file's index in the sorted file list, and a number that increases with the row inside its file; events
with equal timestamps keep this order.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import online_retail

COLUMN_COUNT = "wrong_column_count"  # reason code of a row with too few or too many fields
FORMATS = ("generic", "recbole", "retailrocket", "taobao", "synthetic", "online-retail")
# Formats whose lines of one invoice share a session id and a time: leave-one-out holds out baskets by default
# (data.baskets).
BASKETS_BY_DEFAULT = ("online-retail",)
ONLINE_RETAIL_FILES = ("*.csv.gz", "*.csv")
RAW_FIELDS = ["user_id", "item_id", "event_type", "ts", "session_id", "quantity", "price", "category"]

# Event names in public data sets -> canonical vocabulary. RetailRocket says addtocart/transaction, Taobao pv.
EVENT_SYNONYMS = {
    "pv": "view", "view": "view", "views": "view", "impression": "view", "rating": "view",
    "click": "click", "clk": "click",
    "cart": "cart", "addtocart": "cart", "add_to_cart": "cart", "add-to-cart": "cart",
    "fav": "fav", "favorite": "fav", "favourite": "fav", "like": "fav", "wishlist": "fav",
    "buy": "buy", "purchase": "buy", "transaction": "buy", "order": "buy",
}


def parse_column_map(spec: str | None) -> dict[str, str]:
    """``user_id=visitor,item_id=sku`` -> {"user_id": "visitor", "item_id": "sku"}."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"--map {part!r}: expected canonical=source, e.g. --map user_id=visitor,ts=time")
        canonical, source = (x.strip() for x in part.split("=", 1))
        if canonical not in RAW_FIELDS:
            raise ValueError(f"--map {canonical!r}: not a canonical column; choose from {RAW_FIELDS}")
        mapping[canonical] = source
    return mapping


def normalize_event_type(col: Column) -> Column:
    """Lower-case and map known synonyms; unknown names pass through (validate quarantines them)."""
    lowered = F.lower(F.trim(col))
    mapping = F.create_map(*[F.lit(x) for kv in EVENT_SYNONYMS.items() for x in kv])
    return F.coalesce(mapping[lowered], lowered)


def _view_unless_unread() -> Column:
    """The event type of data without one (RecBole ratings, generic input without the column); a row that could not
    be read (parse_error) gets none, so a miscounted row keeps no field at all."""
    return F.when(F.col("parse_error").isNull(), F.lit("view"))


def _finish(df: DataFrame, fields: dict[str, Column]) -> DataFrame:
    cols = [fields.get(name, F.lit(None)).cast("string").alias(name) for name in RAW_FIELDS]
    return df.select("raw", "source", "src_file", "src_row", "parse_error", *cols)


def _with_position(df: DataFrame, paths: list[str] | None = None, prefix: str = "src") -> DataFrame:
    """Adds the row's place in the input: {prefix}_file, its file (the file's index in `paths`, sorted; without
    paths, the file's path), and {prefix}_row, increasing with the row inside its file (Spark reads a file's splits
    in offset order, and row order inside each). Must follow the read directly."""
    file = F.input_file_name()
    if paths is not None:
        index = F.create_map(*[F.lit(x) for i, p in enumerate(paths) for x in (Path(p).resolve().as_uri(), i)])
        file = F.coalesce(index[file], F.lit(len(paths))).cast("int")
    return df.withColumn(f"{prefix}_file", file).withColumn(f"{prefix}_row", F.monotonically_increasing_id())


def _with_invalid_utf8(df: DataFrame) -> DataFrame:
    # Spark's text reader keeps undecodable bytes as they are; flag the row and keep a valid-UTF-8 copy of it
    # (bad bytes -> U+FFFD) so the quarantine file itself stays readable.
    bad = ~F.is_valid_utf8(F.col("raw"))
    return df.withColumn("parse_error", F.when(bad, F.lit("invalid_utf8")).otherwise(F.col("parse_error"))) \
        .withColumn("raw", F.make_valid_utf8(F.col("raw")))


def read_delimited(spark: SparkSession, paths: list[str], names: list[str], sep: str,
                   header: bool, escape: str | None = None) -> DataFrame:
    """Delimited text with a known column list. A row with the wrong number of fields becomes a parse error
    (`wrong_column_count: expected N fields, found M`), never a drop, and keeps no field: read position by
    position, a short or long row puts its values in other columns (a user id in `ts`), where nothing would
    pseudonymize them. escape: the character that escapes a quote inside a quoted field (Spark's default is a
    backslash; `"` for files that double their quotes, as RFC 4180 and spreadsheet exports do)."""
    text = _with_position(spark.read.text(paths).select(F.col("value").alias("raw"),
                                                        F.input_file_name().alias("source")), paths)
    text = text.where(F.length(F.trim("raw")) > 0)
    if header:
        # Every file starts with the same header line; drop exactly those lines.
        text = text.where(F.col("raw") != F.lit(sep.join(names)))
    ddl = ", ".join(f"`c{i}` STRING" for i in range(len(names) + 1))
    parsed = F.from_csv(F.col("raw"), ddl, {"sep": sep, "mode": "PERMISSIVE", **({"escape": escape} if escape else {})})
    n_fields = F.size(F.split(F.col("raw"), sep if sep != "|" else "\\|", -1))
    wrong = parsed.isNull() | parsed[f"c{len(names)}"].isNotNull() | (
        (n_fields < len(names)) if '"' not in sep else F.lit(False))
    # The message counts the separators outside double quotes, as from_csv splits; only wrong rows pay for it.
    outside_quotes = F.regexp_count(F.col("raw"), F.lit(f"\\Q{sep}\\E(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)")) + 1
    error = F.format_string(f"{COLUMN_COUNT}: expected {len(names)} fields, found %d", outside_quotes)
    df = text.select("raw", "source", "src_file", "src_row", F.when(wrong, error).alias("parse_error"),
                     *[F.when(~wrong, parsed[f"c{i}"]).alias(n) for i, n in enumerate(names)])
    return _with_invalid_utf8(df)


def read_json_lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    text = _with_position(spark.read.text(paths).select(F.col("value").alias("raw"),
                                                        F.input_file_name().alias("source")), paths)
    text = text.where(F.length(F.trim("raw")) > 0)
    obj = F.from_json(F.col("raw"), "MAP<STRING, STRING>")
    df = text.withColumn("obj", obj).withColumn(
        "parse_error", F.when(F.col("obj").isNull(), F.lit("unparseable_line")))
    return _with_invalid_utf8(df)


def read_parquet_as_strings(spark: SparkSession, paths: list[str]) -> DataFrame:
    # Parquet rows have no text form; `raw` stays null here and validate.quarantined renders the canonical
    # fields as JSON for the (few) rejected rows only, instead of serialising every row up front.
    df = spark.read.parquet(*paths)
    df = _with_position(df.select(F.lit(None).cast("string").alias("raw"), F.input_file_name().alias("source"),
                                  *[F.col(c) for c in df.columns]), paths)
    return df.withColumn("parse_error", F.lit(None).cast("string"))


def _expand(path: str, patterns: tuple[str, ...]) -> list[str]:
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        found = sorted({f for pat in patterns for f in glob.glob(str(p / "**" / pat), recursive=True)})
        if found:
            return found
    found = sorted(glob.glob(path))
    if not found:
        raise FileNotFoundError(f"--input {path!r}: no input files found (looked for {', '.join(patterns)})")
    return found


def _ts_to_string(col: Column, dtype: str) -> Column:
    # Parquet timestamps are already absolute; hand them to validate as epoch seconds text.
    if dtype.startswith("timestamp"):
        return F.unix_timestamp(col).cast("string")
    return col.cast("string")


def read_events(spark: SparkSession, input_path: str, fmt: str, column_map: dict[str, str] | None = None,
                sep: str | None = None) -> DataFrame:
    """Dispatch on the input format; returns the raw frame (see module docstring)."""
    column_map = column_map or {}
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: choose one of {FORMATS}")
    if fmt == "synthetic":
        base = Path(input_path)
        files = _expand(str(base / "events") if (base / "events").exists() else input_path, ("*.parquet",))
        df = read_parquet_as_strings(spark, files)
        dtypes = dict(spark.read.parquet(*files).dtypes)
        return _finish(df, {"user_id": F.col("user_id"), "item_id": F.col("item_id"),
                            "event_type": normalize_event_type(F.col("event_type")),
                            "ts": _ts_to_string(F.col("ts"), dtypes.get("ts", "string")),
                            "session_id": F.col("session_id"), "quantity": F.col("quantity"),
                            "price": F.col("price")})
    if fmt == "taobao":
        files = _expand(input_path, ("UserBehavior*.csv", "*.csv"))
        names = ["user_id", "item_id", "category", "event_type", "ts"]
        df = read_delimited(spark, files, names, sep or ",", header=False)
        return _finish(df, {**{n: F.col(n) for n in names},
                            "event_type": normalize_event_type(F.col("event_type"))})
    if fmt == "retailrocket":
        files = [f for f in _expand(input_path, ("events*.csv",)) if "item_properties" not in f]
        names = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
        df = read_delimited(spark, files, names, sep or ",", header=True)
        # RetailRocket timestamps are epoch milliseconds; validate's auto-detection handles the unit.
        return _finish(df, {"user_id": F.col("visitorid"), "item_id": F.col("itemid"),
                            "event_type": normalize_event_type(F.col("event")), "ts": F.col("timestamp"),
                            "session_id": F.col("transactionid")})
    if fmt == "recbole":
        return _read_recbole(spark, input_path, column_map)
    if fmt == online_retail.NAME:
        lines = read_invoice_lines(spark, input_path)
        fields = online_retail.events(lines)
        return _finish(lines.withColumn("parse_error", fields.pop("parse_error")), fields)
    return _read_generic(spark, input_path, column_map, sep)


def read_invoice_lines(spark: SparkSession, input_path: str) -> DataFrame:
    """The Online Retail log's lines, parsed (read_delimited: raw, source, src_file, src_row, parse_error and
    online_retail.COLUMNS): what its events, catalog and users are cut from (spark_jobs/online_retail.py)."""
    return read_delimited(spark, _expand(input_path, ONLINE_RETAIL_FILES), online_retail.COLUMNS, ",", header=True,
                          escape='"')


def _read_recbole(spark: SparkSession, input_path: str, column_map: dict[str, str]) -> DataFrame:
    files = _expand(input_path, ("*.inter",))
    header = Path(files[0]).read_text(errors="replace").splitlines()[0]
    names = [h.split(":")[0] for h in header.split("\t")]
    df = read_delimited(spark, files, names, "\t", header=False)
    df = df.where(F.col("raw") != F.lit(header))
    pick = {"user_id": column_map.get("user_id", "user_id"), "item_id": column_map.get("item_id", "item_id"),
            "ts": column_map.get("ts", "timestamp"), "event_type": column_map.get("event_type")}
    missing = [src for src in pick.values() if src and src not in names and src != "timestamp"]
    if missing:
        raise ValueError(f"recbole header {names} lacks columns {missing}; pass --map canonical=column")
    fields = {k: F.col(v) for k, v in pick.items() if v and v in names}
    # RecBole rating data (e.g. MovieLens) has no behaviour type: every interaction is treated as a view.
    fields["event_type"] = normalize_event_type(fields.get("event_type", _view_unless_unread()))
    return _finish(df, fields)


def _read_generic(spark: SparkSession, input_path: str, column_map: dict[str, str], sep: str | None) -> DataFrame:
    files = _expand(input_path, ("*.csv", "*.tsv", "*.jsonl", "*.json", "*.parquet"))
    ext = os.path.splitext(files[0])[1].lower()

    def col_of(df_cols: list[str], canonical: str) -> Column | None:
        src = column_map.get(canonical, canonical)
        return F.col(f"`{src}`") if src in df_cols else None

    if ext == ".parquet":
        df = read_parquet_as_strings(spark, files)
        dtypes = dict(spark.read.parquet(*files).dtypes)
        fields = {c: col_of(df.columns, c) for c in RAW_FIELDS}
        ts_src = column_map.get("ts", "ts")
        if fields["ts"] is not None:
            fields["ts"] = _ts_to_string(fields["ts"], dtypes.get(ts_src, "string"))
    elif ext in (".jsonl", ".json"):
        df = read_json_lines(spark, files)
        fields = {c: F.col("obj")[column_map.get(c, c)] for c in RAW_FIELDS}
    else:
        delim = sep or ("\t" if ext == ".tsv" else ",")
        with open(files[0], encoding="utf-8", errors="replace") as fh:
            names = [h.strip() for h in fh.readline().rstrip("\n").split(delim)]
        df = read_delimited(spark, files, names, delim, header=True)
        fields = {c: col_of(names, c) for c in RAW_FIELDS}
    for required in ("user_id", "item_id", "ts"):
        if fields.get(required) is None:
            raise ValueError(f"generic input has no column for {required!r}; "
                             f"pass --map {required}=<your column>")
    fields = {k: v for k, v in fields.items() if v is not None}
    fields["event_type"] = normalize_event_type(fields.get("event_type", _view_unless_unread()))
    return _finish(df, fields)


def read_items(spark: SparkSession, fmt: str, input_path: str, items_path: str | None) -> DataFrame | None:
    """Item catalog as item_id, category, brand, price, title, description (strings/doubles), or None when absent.
    A RecBole .item file's description is its genres and its release year ("Animation, Children's, Comedy; 1995")."""
    cols = ["item_id", "category", "brand", "price", "title", "description"]
    if fmt == "synthetic" and items_path is None:
        candidate = Path(input_path) / "items.parquet"
        items_path = str(candidate) if candidate.exists() else None
    if fmt == "retailrocket" and items_path is None:
        props = sorted(glob.glob(str(Path(input_path).parent / "item_properties*.csv"))) if Path(
            input_path).is_file() else sorted(glob.glob(str(Path(input_path) / "item_properties*.csv")))
        if props:
            return _retailrocket_items(spark, props)
    if fmt == online_retail.NAME and items_path is None:  # the invoice lines are the catalog too
        return online_retail.catalog(read_invoice_lines(spark, input_path))
    if fmt == "recbole" and items_path is None:
        found = glob.glob(str(Path(input_path) / "*.item")) if Path(input_path).is_dir() else []
        items_path = found[0] if found else None
    if items_path is None:
        return None
    if items_path.endswith(".item"):
        df = spark.read.option("sep", "\t").option("header", True).csv(items_path)
        df = _with_position(df.toDF(*[c.split(":")[0] for c in df.columns]), prefix="catalog")
        genre = next((c for c in df.columns if c in ("genre", "category", "categories", "class")), None)
        title = next((c for c in df.columns if c in ("movie_title", "title")), None)
        year = next((c for c in df.columns if c in ("release_year", "year")), None)
        parts = ([F.array_join(F.split(F.col(genre), " "), ", ")] if genre else []) + ([F.col(year)] if year else [])
        return df.select("catalog_file", "catalog_row", F.col("item_id").cast("string"),
                         (F.split(F.col(genre), " ")[0] if genre else F.lit(None)).cast("string").alias("category"),
                         F.lit(None).cast("string").alias("brand"), F.lit(None).cast("double").alias("price"),
                         (F.col(title) if title else F.lit(None)).cast("string").alias("title"),
                         (F.concat_ws("; ", *parts) if parts else F.lit(None)).cast("string").alias("description"))
    reader = spark.read.parquet(items_path) if items_path.endswith(".parquet") or Path(items_path).is_dir() \
        else spark.read.option("header", True).csv(items_path)
    present = [c for c in cols if c in reader.columns]
    if "item_id" not in present:
        raise ValueError(f"--items {items_path}: needs an item_id column (has {reader.columns})")
    # catalog_file, catalog_row: the order in which one_row_per_item (items.py) lets an item's last row win
    return _with_position(reader, prefix="catalog").select("catalog_file", "catalog_row", *[
        (F.col(c) if c in present else F.lit(None)).cast("double" if c == "price" else "string").alias(c)
        for c in cols])


def read_planted(spark: SparkSession, fmt: str, input_path: str) -> DataFrame | None:
    """The synthetic generator's planted interests (ground_truth.parquet) as user_id (raw), interests (the
    category paths of the user's interests at the end of the data: after migration for a migrated user),
    interests_before (before migration, null when the user did not migrate), migration_ts (unix seconds, null
    likewise); None for other inputs."""
    path = Path(input_path) / "ground_truth.parquet"
    if fmt != "synthetic" or not path.exists():
        return None
    truth = spark.read.parquet(str(path))
    migrated = F.coalesce(F.col("migrated"), F.lit(False))
    return truth.select(
        F.col("user_id").cast("string").alias("user_id"),
        F.when(migrated, F.col("interests_after")).otherwise(F.col("interests")).alias("interests"),
        F.when(migrated, F.col("interests")).alias("interests_before"),
        F.when(migrated, F.col("migration_ts").cast("long")).alias("migration_ts"))


def _retailrocket_items(spark: SparkSession, files: list[str]) -> DataFrame:
    props = spark.read.option("header", True).csv(files)  # timestamp,itemid,property,value
    latest = (props.where(F.col("property") == "categoryid")
              .groupBy("itemid").agg(F.max_by("value", F.col("timestamp").cast("long")).alias("category")))
    return latest.select(F.lit("").alias("catalog_file"), F.lit(0).cast("long").alias("catalog_row"),
                         F.col("itemid").alias("item_id"), "category", F.lit(None).cast("string").alias("brand"),
                         F.lit(None).cast("double").alias("price"), F.lit(None).cast("string").alias("title"),
                         F.lit(None).cast("string").alias("description"))
