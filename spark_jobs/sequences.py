"""Per-user sequences, leakage-free splits, training windows and per-user features.

Input: indexed events (user_id, ts, src_file, src_row, item_idx, event_type_idx, category_idx). Each user's events
are sorted by (ts, position in the input): equal timestamps keep the input's order (dedupe.py).

Splits:
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

from interest_core.contract import EVAL_COLUMNS, TRAIN_COLUMNS
from interest_core.windows import Ops, WindowRule

_EV = "struct(ts, src_file, src_row, item_idx, event_type_idx, category_idx)"


def _with_dt(ev: Column) -> Column:
    """Adds dt, the gap in seconds to the user's previous event (0 for the first). Computed on the whole history,
    so a training window that starts mid-history still carries the true gap at its first position."""
    return F.transform(ev, lambda e, i: e.withField(
        "dt", F.when(i == 0, F.lit(0).cast("long")).otherwise(e["ts"] - ev[i - 1]["ts"])))


def user_sequences(events: DataFrame) -> DataFrame:
    """Indexed events -> user_id, ev: array<struct<ts, item_idx, event_type_idx, category_idx, dt>>, oldest first."""
    seqs = events.groupBy("user_id").agg(F.array_sort(F.collect_list(F.expr(_EV))).alias("ev"))
    ev = F.transform("ev", lambda e: F.struct(*[e[c].alias(c) for c in ("ts", "item_idx", "event_type_idx",
                                                                         "category_idx")]))
    return seqs.select("user_id", _with_dt(ev).alias("ev"))


def index_sequences(lists: DataFrame, item_index: DataFrame, event_types: list[str],
                    broadcast_items: bool) -> DataFrame:
    """Deduped per-user lists of (ts, item_id, event_type) -> the indexed sequences of user_sequences.

    The lists are already partitioned by user, so exploding them, joining the item index (broadcast when it is
    small enough) and collecting again by user needs no second shuffle of the events.
    """
    etype_idx = F.create_map(*[F.lit(x) for i, t in enumerate(event_types) for x in (t, i + 1)])
    index = item_index.select("item_id", "item_idx", "category_idx")
    flat = lists.select("user_id", F.explode("ev").alias("e"))
    joined = flat.join(F.broadcast(index) if broadcast_items else index,
                       F.col("e.item_id") == index["item_id"], how="inner")
    indexed = joined.select("user_id", F.col("e.ts").alias("ts"), F.col("e.src_file").alias("src_file"),
                            F.col("e.src_row").alias("src_row"), "item_idx",
                            etype_idx[F.col("e.event_type")].alias("event_type_idx"), "category_idx")
    return user_sequences(indexed)


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


def _column(x) -> Column:
    return x if isinstance(x, Column) else F.lit(x)


# The core's window rule evaluated on Columns.
SPARK_OPS = Ops(greatest=lambda a, b: F.greatest(_column(a), _column(b)), ceil=lambda x: F.ceil(x).cast("int"),
                where=lambda c, a, b: F.when(c, _column(a)).otherwise(_column(b)))


def training_windows(split: DataFrame, rule: WindowRule) -> DataFrame:
    """One row per window of at most max_len + 1 events, counted back from the most recent event, with the
    position of its first scored target (interest_core.windows)."""
    m = F.size("train_ev")
    n = rule.n_windows(m, SPARK_OPS)
    df = split.where(F.col("train_ev").isNotNull() & (m >= 2)).select(
        "user_id", "train_ev", n.alias("n_windows"), F.explode(F.sequence(F.lit(0), n - 1)).alias("window"))
    end = rule.end(F.size("train_ev"), F.col("window"))
    start = rule.start(end, SPARK_OPS)
    win = F.slice("train_ev", start, end - start + 1)
    first = rule.first_target(F.col("window"), F.col("n_windows"), SPARK_OPS)
    return df.select("user_id", win.alias("win"), F.col("window").cast("int").alias("window"),
                     first.cast("int").alias("first_target")).select(
        "user_id", *_unzip("win"), "window", "first_target").select(*TRAIN_COLUMNS)


def _unzip(col: str) -> list[Column]:
    return [F.transform(col, lambda e: e["item_idx"]).alias("items"),
            F.transform(col, lambda e: e["event_type_idx"]).alias("event_types"),
            F.transform(col, lambda e: e["ts"]).alias("ts"),
            F.transform(col, lambda e: e["dt"]).alias("dt")]


def _histogram(values: Column, prefix: str) -> list[Column]:
    """Columns {prefix}_keys (sorted distinct values) and {prefix}_counts, by sorting once and scanning: linear
    native work per key instead of one lambda filter over the whole history per key."""
    srt = F.array_sort(values)
    keys = F.array_distinct(srt)
    first = F.transform(keys, lambda c: F.array_position(srt, c))
    return [keys.alias(f"{prefix}_keys"), first.alias(f"{prefix}_first"), F.size(srt).alias(f"{prefix}_n")]


def _counts(prefix: str) -> Column:
    first, n = F.col(f"{prefix}_first"), F.col(f"{prefix}_n")
    return F.transform(first, lambda f, i: F.coalesce(F.try_element_at(first, i + 2), n + 1) - f)


def js_divergence(early: str, recent: str) -> Column:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms made by _histogram/_counts."""
    pe = F.map_from_arrays(F.col(f"{early}_keys"), _counts(early))
    pr = F.map_from_arrays(F.col(f"{recent}_keys"), _counts(recent))
    ne, nr = F.greatest(F.col(f"{early}_n"), F.lit(1)), F.greatest(F.col(f"{recent}_n"), F.lit(1))
    both = F.array_distinct(F.concat(F.col(f"{early}_keys"), F.col(f"{recent}_keys")))

    def term(c: Column) -> Column:
        p = F.coalesce(F.try_element_at(pe, c), F.lit(0)) / ne
        q = F.coalesce(F.try_element_at(pr, c), F.lit(0)) / nr
        mid = (p + q) / 2
        kl = lambda a: F.when(a > 0, a * F.log2(a / mid)).otherwise(F.lit(0.0))  # noqa: E731
        return (kl(p) + kl(q)) / 2

    return F.aggregate(F.transform(both, term), F.lit(0.0), lambda acc, x: acc + x)


def _top_categories(prefix: str, k: int = 3) -> Column:
    """The k most frequent keys (ties by smaller id)."""
    pairs = F.arrays_zip(F.transform(_counts(prefix), lambda n: -n).alias("neg_n"),
                         F.col(f"{prefix}_keys").alias("c"))
    return F.slice(F.transform(F.array_sort(pairs), lambda s: s["c"]), 1, k)


def eval_rows(split: DataFrame, which: str, max_len: int, item_train_counts: DataFrame) -> DataFrame:
    """Rows of contract.EVAL_SCHEMA for which in {"valid", "test"}.

    top_categories and drift_score use known categories only (category id 0 = unknown is left out).
    """
    hist, target = f"{which}_hist", f"{which}_target"
    df = split.where(F.col(target).isNotNull() & F.col(hist).isNotNull())
    h = F.size(hist)
    last = F.slice(hist, F.greatest(F.lit(1), h - max_len + 1), max_len)
    half = F.floor(h / 2).cast("int")
    cat = lambda e: e["category_idx"]  # noqa: E731
    early = F.filter(F.transform(F.slice(hist, 1, F.greatest(half, F.lit(1))), cat), lambda c: c > 0)
    recent = F.filter(F.transform(F.slice(hist, half + 1, h), cat), lambda c: c > 0)
    known = F.filter(F.transform(hist, cat), lambda c: c > 0)
    # Histograms are materialised as columns first, so later expressions reference them instead of
    # recomputing them per element.
    df = df.select(
        "user_id", last.alias("last"), F.col(target).alias("t"), h.alias("history_len"),
        F.array_distinct(F.transform(hist, lambda e: e["item_idx"])).alias("seen_items"),
        (F.col(target)["ts"] - F.element_at(hist, -1)["ts"]).alias("time_since_last"),
        *_histogram(known, "all"), *_histogram(early, "early"), *_histogram(recent, "recent"),
        "decay_label", "censored")
    df = df.select("*", _top_categories("all").alias("top_categories"),
                   F.when(F.col("history_len") >= 2, js_divergence("early", "recent"))
                   .otherwise(F.lit(0.0)).alias("drift_score"))
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
