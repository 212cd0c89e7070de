"""Per-user sequences, leakage-free splits, training windows and per-user features.

Input: indexed events (user_id, ts, item_idx, event_type_idx, category_idx). Each user's events are sorted by
(ts, item_idx, event_type_idx), which makes equal timestamps deterministic.

Splits (DESIGN.md):
  leave-one-out: last event -> test target, second-to-last -> valid target, the rest trains.
                 Users with 2 events get a test row only; users with 1 event only appear in nothing that has a
                 target and are counted in the manifest (users_without_target).
  time:          events <= cutoff train (their last event is the valid target); the first event after the
                 cutoff is the test target; decay_label = any event in (cutoff, cutoff + horizon].
Nothing a target depends on is visible in its history or in any training window that precedes it in time.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.schema import EVAL_COLUMNS, TRAIN_COLUMNS

_EV = "struct(ts, item_idx, event_type_idx, category_idx)"


def user_sequences(events: DataFrame) -> DataFrame:
    """user_id, ev: array<struct<ts, item_idx, event_type_idx, category_idx, dt>> sorted oldest first.

    dt is the gap in seconds to the user's previous event (0 for the first), computed on the whole history so a
    training window that starts mid-history still carries the true gap at its first position.
    """
    seqs = events.groupBy("user_id").agg(F.array_sort(F.collect_list(F.expr(_EV))).alias("ev"))
    ev = F.col("ev")
    with_dt = F.transform(ev, lambda e, i: e.withField(
        "dt", F.when(i == 0, F.lit(0).cast("long")).otherwise(e["ts"] - ev[i - 1]["ts"])))
    return seqs.select("user_id", with_dt.alias("ev"))


def split_sequences(seqs: DataFrame, split: str, cutoff_ts: int | None = None,
                    horizon_s: int | None = None) -> DataFrame:
    """Adds train_ev, valid_hist/valid_target, test_hist/test_target (+ decay label and censoring)."""
    n = F.size("ev")
    if split == "leave-one-out":
        target_at = lambda i: F.when(n >= i, F.element_at("ev", n - i + 1))  # noqa: E731
        hist_upto = lambda k: F.when(n > k, F.slice("ev", 1, n - k))  # noqa: E731
        return seqs.select(
            "user_id",
            F.when(n >= 3, hist_upto(2)).otherwise(hist_upto(1)).alias("train_ev"),
            F.when(n >= 3, hist_upto(2)).alias("valid_hist"), F.when(n >= 3, target_at(2)).alias("valid_target"),
            hist_upto(1).alias("test_hist"), F.when(n >= 2, target_at(1)).alias("test_target"),
            F.lit(None).cast("int").alias("decay_label"), F.lit(None).cast("boolean").alias("censored"))
    if split != "time" or cutoff_ts is None or horizon_s is None:
        raise ValueError("split='time' needs --cutoff DATE and --horizon-days N")
    past = F.filter("ev", lambda e: e["ts"] <= cutoff_ts)
    future = F.filter("ev", lambda e: e["ts"] > cutoff_ts)
    with_parts = seqs.select("user_id", past.alias("past"), future.alias("future"))
    in_horizon = F.exists("future", lambda e: e["ts"] <= cutoff_ts + horizon_s)
    m = F.size("past")
    return with_parts.select(
        "user_id",
        F.when(m >= 2, F.slice("past", 1, m - 1)).alias("train_ev"),
        F.when(m >= 2, F.slice("past", 1, m - 1)).alias("valid_hist"),
        F.when(m >= 2, F.element_at("past", m)).alias("valid_target"),
        F.when(m >= 1, F.col("past")).alias("test_hist"),
        F.when((m >= 1) & (F.size("future") >= 1), F.element_at("future", 1)).alias("test_target"),
        F.when(m >= 1, in_horizon.cast("int")).alias("decay_label"),
        F.when(m >= 1, F.size("future") == 0).alias("censored"))


def training_windows(split: DataFrame, max_len: int, stride: int) -> DataFrame:
    """One row per window of at most max_len + 1 events, counted back from the most recent event."""
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride={stride}: must be in [1, max_len={max_len}]; set data.stride")
    w = max_len + 1
    m = F.size("train_ev")
    n_windows = F.lit(1) + F.greatest(F.lit(0), F.ceil((m - w) / F.lit(stride))).cast("int")
    df = split.where(F.col("train_ev").isNotNull() & (m >= 2)).select(
        "user_id", "train_ev", F.explode(F.sequence(F.lit(0), n_windows - 1)).alias("window"))
    end = F.size("train_ev") - F.col("window") * stride
    start = F.greatest(F.lit(1), end - w + 1)
    win = F.slice("train_ev", start, end - start + 1)
    return df.select("user_id", win.alias("win"), F.col("window").cast("int").alias("window")).select(
        "user_id", *_unzip("win"), "window").select(*TRAIN_COLUMNS)


def _unzip(col: str) -> list[Column]:
    return [F.transform(col, lambda e: e["item_idx"]).alias("items"),
            F.transform(col, lambda e: e["event_type_idx"]).alias("event_types"),
            F.transform(col, lambda e: e["ts"]).alias("ts"),
            F.transform(col, lambda e: e["dt"]).alias("dt")]


def _category_counts(cats: Column) -> Column:
    """array<struct<n, c>> of distinct categories with their counts, most frequent first (ties by id)."""
    distinct = F.array_distinct(cats)
    counted = F.transform(distinct, lambda c: F.struct(
        (-F.size(F.filter(cats, lambda x: x == c))).alias("neg_n"), c.alias("c")))
    return F.array_sort(counted)


def js_divergence(early: Column, recent: Column) -> Column:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between the category histograms of two arrays."""
    both = F.array_distinct(F.concat(early, recent))
    ne, nr = F.greatest(F.size(early), F.lit(1)), F.greatest(F.size(recent), F.lit(1))

    def term(c: Column) -> Column:
        p = F.size(F.filter(early, lambda x: x == c)) / ne
        q = F.size(F.filter(recent, lambda x: x == c)) / nr
        mid = (p + q) / 2
        kl = lambda a: F.when(a > 0, a * F.log2(a / mid)).otherwise(F.lit(0.0))  # noqa: E731
        return (kl(p) + kl(q)) / 2

    return F.aggregate(F.transform(both, term), F.lit(0.0), lambda acc, x: acc + x)


def eval_rows(split: DataFrame, which: str, max_len: int, item_train_counts: DataFrame) -> DataFrame:
    """Rows of schema.EVAL for which in {"valid", "test"}."""
    hist, target = f"{which}_hist", f"{which}_target"
    df = split.where(F.col(target).isNotNull() & F.col(hist).isNotNull())
    h = F.size(hist)
    last = F.slice(hist, F.greatest(F.lit(1), h - max_len + 1), max_len)
    cats = F.transform(hist, lambda e: e["category_idx"])
    half = F.floor(h / 2).cast("int")
    early = F.slice(cats, 1, F.greatest(half, F.lit(1)))
    recent = F.slice(cats, half + 1, h)
    df = df.select(
        "user_id", last.alias("last"), F.col(target).alias("t"), h.alias("history_len"),
        F.array_distinct(F.transform(hist, lambda e: e["item_idx"])).alias("seen_items"),
        F.slice(F.transform(_category_counts(cats), lambda s: s["c"]), 1, 3).alias("top_categories"),
        (F.col(target)["ts"] - F.element_at(hist, -1)["ts"]).alias("time_since_last"),
        F.when(h >= 2, js_divergence(early, recent)).otherwise(F.lit(0.0)).alias("drift_score"),
        "decay_label", "censored")
    counts = item_train_counts.select(F.col("item_idx").alias("_idx"), F.col("train_count").alias("_tc"))
    df = df.join(counts, F.col("t")["item_idx"] == F.col("_idx"), how="left")
    return df.select(
        "user_id", *_unzip("last"),
        F.col("t")["item_idx"].alias("target_item"), F.col("t")["event_type_idx"].alias("target_event_type"),
        F.col("t")["ts"].alias("target_ts"), F.col("t")["category_idx"].alias("target_category"),
        "history_len", "seen_items", "top_categories", "time_since_last", "drift_score",
        (F.coalesce(F.col("_tc"), F.lit(0)) == 0).alias("target_is_cold_item"),
        "decay_label", "censored").select(*EVAL_COLUMNS)


def item_train_counts(split: DataFrame) -> DataFrame:
    """item_idx, train_count: occurrences in the training part of every user's history."""
    ev = split.where(F.col("train_ev").isNotNull()).select(F.explode("train_ev").alias("e"))
    return ev.groupBy(F.col("e")["item_idx"].alias("item_idx")).agg(F.count(F.lit(1)).alias("train_count"))
