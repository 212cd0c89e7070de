"""Validate raw rows into canonical events; every rejected row goes to quarantine with a reason code.

Timestamp auto-detection (``ts_unit="auto"``), per value:
  * an integer or decimal number below 1e11 is epoch seconds, at or above 1e11 epoch milliseconds
    (1e11 s is the year 5138; 1e11 ms is 1973, so the two ranges do not overlap for real data);
  * anything else is parsed as an ISO-8601 date/time (a missing zone means UTC).
``ts_unit`` in {"s", "ms", "iso"} forces one interpretation.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from interest_core.contract import QUARANTINE_SCHEMA
from spark_jobs import online_retail
from spark_jobs.ingest import RAW_FIELDS
from spark_jobs.pseudonymize import hmac_column

_NUMERIC = r"^\s*-?\d+(\.\d+)?\s*$"


@dataclass(frozen=True)
class Rules:
    event_types: tuple[str, ...]
    ts_min: int            # epoch seconds
    ts_max: int            # epoch seconds (now + allowed clock skew)
    max_id_length: int
    ts_unit: str = "auto"  # auto | s | ms | iso


def rules_from_config(data_cfg, ts_unit: str = "auto", now: float | None = None) -> Rules:
    """now: the moment later events count as in the future (the ETL passes data.now or the input's modification
    time; the wall clock only when a caller gives none)."""
    ts_min = int(dt.datetime.fromisoformat(data_cfg.ts_min).replace(tzinfo=dt.timezone.utc).timestamp())
    now = time.time() if now is None else now
    return Rules(tuple(data_cfg.event_types), ts_min, int(now) + data_cfg.max_future_seconds,
                 data_cfg.max_id_length, ts_unit)


def parse_ts(col: Column, unit: str = "auto") -> Column:
    """String -> epoch seconds (long) or null when unparseable."""
    # Spark 4 runs in ANSI mode: a failing cast raises, so every parse is a try_ variant, and numbers too
    # large for a long (any real epoch value is far below 1e15) become null rather than an overflow error.
    parsed = F.trim(col).try_cast("double")
    num = F.when(col.rlike(_NUMERIC) & (F.abs(parsed) < 1e15), parsed)
    iso = F.unix_timestamp(F.try_to_timestamp(F.trim(col)))
    if unit == "s":
        return num.cast("long")
    if unit == "ms":
        return F.floor(num / 1000).cast("long")
    if unit == "iso":
        return iso
    if unit != "auto":
        raise ValueError(f"--ts-unit {unit!r}: choose auto, s, ms or iso")
    return F.when(num.isNotNull(), F.when(num >= 1e11, F.floor(num / 1000)).otherwise(num).cast("long")) \
        .otherwise(iso)


def _num(col: Column) -> Column:
    return F.when(col.isNull() | (F.trim(col) == ""), F.lit(None).cast("double")).otherwise(
        F.trim(col).try_cast("double"))


def _bad_num(col: Column) -> Column:
    return col.isNotNull() & (F.trim(col) != "") & _num(col).isNull()


def with_reason(raw: DataFrame, rules: Rules) -> DataFrame:
    """Adds ts_s (epoch seconds) and `reason` (the first failing check below, null when valid)."""
    blank = lambda c: F.col(c).isNull() | (F.trim(F.col(c)) == "")  # noqa: E731
    too_long = (F.length("user_id") > rules.max_id_length) | (F.length("item_id") > rules.max_id_length)
    df = raw.withColumn("ts_s", parse_ts(F.col("ts"), rules.ts_unit))
    checks = [
        (F.col("parse_error").isNotNull(), F.col("parse_error")),
        (blank("user_id"), F.lit("missing_user")),
        (blank("item_id"), F.lit("missing_item")),
        (blank("ts"), F.lit("missing_ts")),
        (F.col("ts_s").isNull(), F.lit("unparseable_ts")),
        (F.col("ts_s") < rules.ts_min, F.lit("ts_out_of_range")),
        (F.col("ts_s") > rules.ts_max, F.lit("ts_in_future")),
        (~F.col("event_type").isin(list(rules.event_types)) | F.col("event_type").isNull(),
         F.lit("unknown_event_type")),
        (_bad_num(F.col("quantity")) | _bad_num(F.col("price")), F.lit("unparseable_number")),
        (_num(F.col("quantity")) < 0, F.lit("negative_quantity")),
        (_num(F.col("price")) < 0, F.lit("negative_price")),
        (too_long, F.lit("id_too_long")),
    ]
    reason = F.lit(None).cast("string")
    for cond, code in reversed(checks):
        reason = F.when(cond, code).otherwise(reason)
    return df.withColumn("reason", reason)


CAP_REASON = "user_event_cap"
# Rows that a rule sets aside (over data.max_events_per_user; what a format's rules say is no purchase, e.g. an
# anonymous or cancelled invoice line: spark_jobs/online_retail.py): quarantined with their reason and counted, not
# bad input, so not held against data.max_quarantine_fraction.
SET_ASIDE = (CAP_REASON, *online_retail.SET_ASIDE)
MAX_CAPPED_USERS = 100_000  # more users over the cap than this: the cap is too low for the data, not a few bots


def cap_events_per_user(checked: DataFrame, max_events: int | None) -> tuple[DataFrame, int]:
    """Marks every valid event of a user beyond their most recent max_events (by time, then input position) with
    reason user_event_cap; returns the frame and the number of users capped. One aggregation over the valid rows
    finds the users over the cap; the ranking window runs over their rows only, on four narrow columns."""
    if not max_events:
        return checked, 0
    user = F.trim(F.col("user_id"))
    over = (checked.where(F.col("reason").isNull()).groupBy(user.alias("u")).count()
            .where(F.col("count") > max_events).select("u").limit(MAX_CAPPED_USERS + 1).collect())
    if not over:
        return checked, 0
    if len(over) > MAX_CAPPED_USERS:
        raise ValueError(f"more than {MAX_CAPPED_USERS:,} users have over data.max_events_per_user={max_events:,} "
                         f"events: the cap is too low for this data; raise it (--set data.max_events_per_user=N)")
    heavy = F.coalesce(F.col("reason").isNull() & user.isin([r["u"] for r in over]), F.lit(False))
    # Each capped user's N-th most recent event, ranked on a narrow projection of the capped users' rows only;
    # every valid event before it is capped.
    latest = Window.partitionBy("u").orderBy(F.col("e_ts").desc(), F.col("e_file").desc(), F.col("e_row").desc())
    edge = (checked.where(heavy).select(user.alias("u"), F.col("ts_s").alias("e_ts"),
                                         F.col("src_file").alias("e_file"), F.col("src_row").alias("e_row"))
            .withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == max_events).drop("_rank"))
    # One row per capped user, collected once: the input is not cached, and every pass that reads the frame returned
    # here (quarantine, user lists) would otherwise rank the capped users' rows again.
    edge = checked.sparkSession.createDataFrame(edge.collect(), edge.schema)
    marked = checked.join(F.broadcast(edge), user == F.col("u"), "left")
    older = F.struct("ts_s", "src_file", "src_row") < F.struct("e_ts", "e_file", "e_row")  # field by field
    capped = F.when(F.col("reason").isNull() & F.col("u").isNotNull() & older,
                    F.lit(CAP_REASON)).otherwise(F.col("reason"))
    return marked.withColumn("reason", capped).drop("u", "e_ts", "e_file", "e_row"), len(over)


def valid_events(checked: DataFrame) -> DataFrame:
    """Rows without a reason: user_id, item_id, event_type, ts (epoch seconds), session_id, quantity, price,
    category, and the row's input position src_file, src_row."""
    return checked.where(F.col("reason").isNull()).select(
        F.trim("user_id").alias("user_id"), F.trim("item_id").alias("item_id"), "event_type",
        F.col("ts_s").alias("ts"), F.col("session_id"), _num(F.col("quantity")).alias("quantity"),
        _num(F.col("price")).alias("price"), F.col("category"), "src_file", "src_row")


def quarantined(checked: DataFrame, key: bytes) -> DataFrame:
    """Rejected rows (contract.QUARANTINE_SCHEMA): reason, file and position, the user field pseudonymized with
    the ETL's key, the other fields as read, and the SHA-256 of the row's text (never the text: an unparseable
    row can hold a raw user id anywhere). A row with the wrong number of fields has no field left to keep
    (ingest.read_delimited): its reason, file, position and hash only."""
    as_json = F.to_json(F.struct(*[F.col(c) for c in RAW_FIELDS]))
    return checked.where(F.col("reason").isNotNull()).select(
        "reason", "source", F.col("src_row").cast("long").alias("position"),
        hmac_column(F.col("user_id"), key).alias("user_id"), *[F.col(c) for c in RAW_FIELDS if c != "user_id"],
        F.sha2(F.coalesce(F.col("raw"), as_json), 256).alias("raw_sha256")).select(*QUARANTINE_SCHEMA.names)


class QuarantineLimitExceeded(RuntimeError):
    pass


def check_time_split(cutoff_ts: int, horizon_s: int, first_ts: int, last_ts: int) -> None:
    """split=time needs training events before cutoff - horizon and a whole label window before the data ends."""
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    if cutoff_ts - horizon_s <= first_ts:
        raise ValueError(f"--cutoff {iso(cutoff_ts)} minus the horizon ({horizon_s / 86400:g} days) is not after "
                         f"the first event ({iso(first_ts)}): nothing would train. Choose a later --cutoff or a "
                         f"shorter --horizon-days")
    if cutoff_ts + horizon_s > last_ts:
        raise ValueError(f"--cutoff {iso(cutoff_ts)} plus the horizon ({horizon_s / 86400:g} days) is after the "
                         f"last event ({iso(last_ts)}): the test labels would miss events never recorded. Choose "
                         f"a --cutoff at most {iso(last_ts - horizon_s)} or a shorter --horizon-days")


def check_quarantine(reason_counts: dict[str | None, int], max_fraction: float) -> dict:
    """Counts per reason code; fails above max_fraction of bad rows (the rows a rule sets aside, SET_ASIDE, are
    quarantined and counted, not held against the threshold). A reason's detail after its code
    (`wrong_column_count: expected 5 fields, found 4`) stays in the quarantined row, not in the counts."""
    rows_in = sum(reason_counts.values())
    bad: dict[str, int] = {}
    for reason, n in reason_counts.items():
        if reason is not None:
            code = reason.split(":")[0]
            bad[code] = bad.get(code, 0) + n
    n_bad = sum(bad.values())
    set_aside = sum(bad.get(code, 0) for code in SET_ASIDE)
    frac = (n_bad - set_aside) / rows_in if rows_in else 0.0
    if rows_in == 0:
        raise ValueError("the input holds no rows; check --input and --format")
    if frac > max_fraction:
        top = ", ".join(f"{k}={v}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:5])
        raise QuarantineLimitExceeded(
            f"{frac:.2%} of {rows_in} input rows quarantined, above the threshold {max_fraction:.2%} "
            f"(data.max_quarantine_fraction); top reasons: {top}. Check --format/--map/--ts-unit, or raise "
            f"the threshold with --set data.max_quarantine_fraction=...")
    return {"rows_in": rows_in, "rows_quarantined": n_bad, "rows_set_aside": set_aside, "fraction": frac,
            "by_reason": dict(sorted(bad.items()))}
