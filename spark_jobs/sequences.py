"""Per-user sequences, leakage-free splits, training windows and per-user features.

Input: indexed events (user_id, ts, src_file, src_row, item_idx, event_type_idx, category_idx). Each user's events
are sorted by (ts, position in the input): equal timestamps keep the input's order (dedupe.py).

Splits:
  leave-one-out: last event -> test target, second-to-last -> valid target, the rest trains.
                 Users with 2 events get a test row only; users with 1 event only appear in nothing that has a
                 target and are counted in the manifest (users_without_target).
  time:          with cutoff C and horizon H, V = C - H: events <= V train; the first event in (V, C] is the
                 valid target and the first event after C the test target (histories: events <= V, <= C).
                 Decay rows: every user with an event <= V (valid) or <= C (test), labelled "any event in
                 (V, V + H]" and "(C, C + H]". A training sequence ends with a censoring marker at V (item 0,
                 the time V): the gap from the user's last training event to V is a censored survival target.
Nothing a target depends on is visible in its history or in any training window that precedes it in time.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from interest_core.contract import DECAY_COLUMNS, DRIFT_COLUMNS, EVAL_COLUMNS, INTEREST_CATEGORIES, TRAIN_COLUMNS
from interest_core.windows import Ops, WindowRule

_EV = "struct(ts, src_file, src_row, item_idx, event_type_idx, category_idx)"


def _with_dt(ev: str) -> Column:
    """Adds dt, the gap in seconds to the user's previous event (0 for the first). Computed on the whole history,
    so a training window that starts mid-history still carries the true gap at its first position. `ev` names a
    column: an expression read inside the lambda would be recomputed for every element (quadratic)."""
    return F.transform(ev, lambda e, i: e.withField(
        "dt", F.when(i == 0, F.lit(0).cast("long")).otherwise(e["ts"] - F.col(ev)[i - 1]["ts"])))


def user_sequences(events: DataFrame) -> DataFrame:
    """Indexed events -> user_id, ev: array<struct<ts, item_idx, event_type_idx, category_idx, dt>>, oldest first."""
    seqs = events.groupBy("user_id").agg(F.array_sort(F.collect_list(F.expr(_EV))).alias("ev"))
    ev = F.transform("ev", lambda e: F.struct(*[e[c].alias(c) for c in ("ts", "item_idx", "event_type_idx",
                                                                         "category_idx")]))
    return seqs.select("user_id", ev.alias("ev")).select("user_id", _with_dt("ev").alias("ev"))


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
    """Adds train_ev (+ train_end, the time its observation ends: split=time only), valid_hist/valid_target,
    test_hist/test_target, for split=time the decay labels of every user with a history: valid_decay_label,
    test_decay_label (decay_rows reads them with valid_hist / test_hist), and the held-out events of the
    next-action evaluation: action_ev (the history up to the end of the test period) and action_from (1-based
    position of its first held-out event): the last event under leave-one-out, the events in (C, C + H] under
    split=time (users with events on both sides of C only)."""
    n = F.size("ev")
    if split == "leave-one-out":
        target_at = lambda i: F.when(n >= i, F.element_at("ev", n - i + 1))  # noqa: E731
        hist_upto = lambda k: F.when(n > k, F.slice("ev", 1, n - k))  # noqa: E731
        none = F.lit(None)
        return seqs.select(
            "user_id",
            F.when(n >= 3, hist_upto(2)).otherwise(hist_upto(1)).alias("train_ev"),
            none.cast("long").alias("train_end"),
            F.when(n >= 3, hist_upto(2)).alias("valid_hist"), F.when(n >= 3, target_at(2)).alias("valid_target"),
            hist_upto(1).alias("test_hist"), F.when(n >= 2, target_at(1)).alias("test_target"),
            none.cast("int").alias("valid_decay_label"), none.cast("int").alias("test_decay_label"),
            F.when(n >= 2, F.col("ev")).alias("action_ev"), F.when(n >= 2, n).cast("int").alias("action_from"))
    if split != "time" or cutoff_ts is None or horizon_s is None:
        raise ValueError("split='time' needs --cutoff DATE and --horizon-days N")
    v = cutoff_ts - horizon_s
    upto = lambda t: F.filter("ev", lambda e: e["ts"] <= t)  # noqa: E731
    after = lambda t: F.filter("ev", lambda e: e["ts"] > t)  # noqa: E731
    parts = seqs.select("user_id", upto(v).alias("pv"), upto(cutoff_ts).alias("pc"),
                        after(v).alias("fv"), after(cutoff_ts).alias("fc"), upto(cutoff_ts + horizon_s).alias("ph"))
    some = lambda c: F.when(F.size(c) >= 1, F.col(c))  # noqa: E731
    held_out = (F.size("pc") >= 1) & (F.size("ph") > F.size("pc"))
    first = lambda c, t: F.when((F.size(c) >= 1) & (F.element_at(c, 1)["ts"] <= t), F.element_at(c, 1))  # noqa
    label = lambda hist, fut, end: F.when(  # noqa: E731
        F.size(hist) >= 1, F.exists(fut, lambda e: e["ts"] <= end + horizon_s).cast("int"))
    return parts.select(
        "user_id",
        some("pv").alias("train_ev"), F.when(F.size("pv") >= 1, F.lit(v)).cast("long").alias("train_end"),
        some("pv").alias("valid_hist"), F.when(F.size("pv") >= 1, first("fv", cutoff_ts)).alias("valid_target"),
        some("pc").alias("test_hist"), F.when(F.size("pc") >= 1, first("fc", 2**62)).alias("test_target"),
        label("pv", "fv", v).alias("valid_decay_label"), label("pc", "fc", cutoff_ts).alias("test_decay_label"),
        F.when(held_out, F.col("ph")).alias("action_ev"), F.when(held_out, F.size("pc") + 1).cast("int")
        .alias("action_from"))


COLD_ITEMS_SEED = 20_241  # the hash seed of the cold-item holdout (a fixed choice: reruns hold out the same items)


def held_out_item(item_idx: Column, fraction: float) -> Column:
    """True for the items of the zero-shot holdout (data.cold_items): a hash of the item id below the fraction."""
    bucket = F.pmod(F.xxhash64(item_idx.cast("int"), F.lit(COLD_ITEMS_SEED)), F.lit(1_000_000))
    return bucket < F.lit(int(round(fraction * 1_000_000)))


def hold_out_items(split: DataFrame, fraction: float) -> DataFrame:
    """Removes the held-out items' events from train_ev (null when nothing is left), so they get no training window,
    training count or graph edge; their valid/test targets and their places in histories stay. fraction 0 = off."""
    if fraction <= 0:
        return split
    kept = F.filter("train_ev", lambda e: ~held_out_item(e["item_idx"], fraction))
    return split.withColumn("train_ev", F.when(F.size(kept) >= 1, kept))


COLD_USERS_SEED = 20_251  # the hash seed of the cold-user holdout; HISTORY_SEED draws each held-out user's history
COLD_USERS_HISTORY_SEED = 20_252


def held_out_user(user_id: Column, fraction: float) -> Column:
    """True for the users of the new-user holdout (data.cold_users): a hash of the pseudonym below the fraction."""
    bucket = F.pmod(F.xxhash64(user_id, F.lit(COLD_USERS_SEED)), F.lit(1_000_000))
    return bucket < F.lit(int(round(fraction * 1_000_000)))


def hold_out_users(split: DataFrame, fraction: float, max_events: int) -> DataFrame:
    """The new-user protocol (leave-one-out splits): a hashed fraction of users get no training window and no
    validation or next-action row; their test row keeps only their first h events as history, h = 1 + a hash of the
    pseudonym mod max_events (at most their events but one), and the event after those as the target. So they are
    users the model never trained on, with 1..max_events events, as a new user is. fraction 0 = off."""
    if fraction <= 0:
        return split
    held = held_out_user(F.col("user_id"), fraction) & F.col("test_target").isNotNull()
    full = F.concat(F.col("test_hist"), F.array(F.col("test_target")))  # every event (leave-one-out)
    h = F.least(F.pmod(F.xxhash64("user_id", F.lit(COLD_USERS_HISTORY_SEED)), F.lit(max_events)) + 1,
                F.size(full) - 1).cast("int")
    new = {"test_target": F.when(held, F.element_at(full, h + 1)).otherwise(F.col("test_target")),
           "test_hist": F.when(held, F.slice(full, F.lit(1), h)).otherwise(F.col("test_hist"))}
    new |= {c: F.when(~held, F.col(c)) for c in ("train_ev", "valid_hist", "valid_target", "action_ev", "action_from")}
    return split.select(*[new[c].alias(c) if c in new else F.col(c) for c in split.columns])  # one select: every
    # expression reads the columns as they were


def _column(x) -> Column:
    return x if isinstance(x, Column) else F.lit(x)


# The core's window rule evaluated on Columns.
SPARK_OPS = Ops(greatest=lambda a, b: F.greatest(_column(a), _column(b)), ceil=lambda x: F.ceil(x).cast("int"),
                where=lambda c, a, b: F.when(c, _column(a)).otherwise(_column(b)))


def with_censoring_marker(split: DataFrame) -> DataFrame:
    """train_ev + one marker event (item 0, time train_end) where the observation end is known (split=time): the
    window rule then makes the gap from the last training event to train_end a target like any other, which the
    collate reads as censored (no event up to then) because its item is 0. No marker under leave-one-out."""
    if "train_end" not in split.columns:
        return split
    last = F.element_at("train_ev", -1)
    marker = F.struct(F.col("train_end").alias("ts"), F.lit(0).alias("item_idx"), F.lit(0).alias("event_type_idx"),
                      F.lit(0).alias("category_idx"), (F.col("train_end") - last["ts"]).alias("dt"))
    return split.withColumn("train_ev", F.when(F.col("train_end").isNotNull(),
                                               F.concat("train_ev", F.array(marker))).otherwise(F.col("train_ev")))


def _before(events: Column, n_before: Column, buy_type: int | None) -> list[Column]:
    """days_before (distinct UTC days with an event) and buys_before (events of type buy_type) among the first
    n_before events: the whole-history counts the decay head continues inside a window (batches.py)."""
    head = F.slice(events, 1, n_before)
    days = F.size(F.array_distinct(F.transform(head, lambda e: F.floor(e["ts"] / 86400))))
    buys = F.size(F.filter(head, lambda e: e["event_type_idx"] == buy_type)) if buy_type is not None else F.lit(0)
    return [F.when(n_before > 0, days).otherwise(0).cast("int").alias("days_before"),
            F.when(n_before > 0, buys).otherwise(0).cast("int").alias("buys_before")]


def training_windows(split: DataFrame, rule: WindowRule, buy_type: int | None = None) -> DataFrame:
    """One row per window of at most max_len + 1 events, counted back from the most recent event, with the
    position of its first scored target (interest_core.windows), the number of the user's events before the
    window (n_before), the time of the user's first event (first_ts), and the distinct days and buys before
    the window (_before; O(events before the window) per window)."""
    return _windows(with_censoring_marker(split), "train_ev", rule, buy_type)


def action_windows(split: DataFrame, rule: WindowRule, buy_type: int | None = None) -> DataFrame:
    """TRAIN_SCHEMA rows that the next-action evaluation scores: the windows of action_ev (split_sequences) that
    hold a held-out event, with first_target moved up to the first of them. Every held-out event is scored once,
    in the window the rule scores it in, with the left context training would give it; no earlier event is."""
    return _windows(split, "action_ev", rule, buy_type, scored_from="action_from")


def _windows(split: DataFrame, col: str, rule: WindowRule, buy_type: int | None,
             scored_from: str | None = None) -> DataFrame:
    m = F.size(col)
    n = rule.n_windows(m, SPARK_OPS)
    last = n - 1
    if scored_from:  # window k ends at m - k * stride; only those ending at or after scored_from hold a target
        last = F.least(last, F.floor((m - F.col(scored_from)) / rule.stride).cast("int"))
    df = split.where(F.col(col).isNotNull() & (m >= 2)).select(
        "user_id", col, *([scored_from] if scored_from else []), n.alias("n_windows"), user_features(split),
        F.explode(F.sequence(F.lit(0), last)).alias("window"))
    end = rule.end(F.size(col), F.col("window"))
    start = rule.start(end, SPARK_OPS)
    win = F.slice(col, start, end - start + 1)
    first = rule.first_target(F.col("window"), F.col("n_windows"), SPARK_OPS)
    if scored_from:  # 1-based position scored_from is 0-based position scored_from - start in the window
        df = df.where(end >= F.col(scored_from))
        first = F.greatest(first, F.col(scored_from) - start)
    return df.select("user_id", win.alias("win"), F.col("window").cast("int").alias("window"),
                     first.cast("int").alias("first_target"), (start - 1).cast("int").alias("n_before"),
                     F.element_at(col, 1)["ts"].alias("first_ts"),
                     *_before(F.col(col), start - 1, buy_type), "user_features").select(
        "user_id", *_unzip("win"), "window", "first_target", "n_before", "first_ts", "days_before",
        "buys_before", "user_features").select(*TRAIN_COLUMNS)


def user_features(split: DataFrame) -> Column:
    """The per-user frame's user_features (spark_jobs/users.attach), an empty list when it has none."""
    return (F.col("user_features") if "user_features" in split.columns
            else F.array().cast("array<int>")).alias("user_features")


def _unzip(col: str | Column) -> list[Column]:
    return [F.transform(col, lambda e: e["item_idx"]).alias("items"),
            F.transform(col, lambda e: e["event_type_idx"]).alias("event_types"),
            F.transform(col, lambda e: e["ts"]).alias("ts"),
            F.transform(col, lambda e: e["dt"]).alias("dt")]


def _histogram(sorted_values: str, prefix: str) -> list[Column]:
    """Columns {prefix}_keys (sorted distinct values), {prefix}_first and {prefix}_n from a column of sorted values
    (a column, not an expression: the lambda reads it once per key, and an expression would be re-sorted each
    time); _counts turns them into counts: linear native work instead of one lambda filter per key."""
    srt = F.col(sorted_values)
    keys = F.array_distinct(srt)
    first = F.transform(keys, lambda c: F.array_position(srt, c))
    return [keys.alias(f"{prefix}_keys"), first.alias(f"{prefix}_first"), F.size(srt).alias(f"{prefix}_n")]


def _counts(prefix: str) -> Column:
    first, n = F.col(f"{prefix}_first"), F.col(f"{prefix}_n")
    return F.transform(first, lambda f, i: F.coalesce(F.try_element_at(first, i + 2), n + 1) - f)


def _count_map(prefix: str) -> Column:
    """key -> count of a histogram, as a column {prefix}_map (js_divergence reads it)."""
    return F.map_from_arrays(F.col(f"{prefix}_keys"), _counts(prefix)).alias(f"{prefix}_map")


def js_divergence(early: str, recent: str) -> Column:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms made by _histogram, whose count maps
    (_count_map) are materialised columns: built inside the lambda, they would be rebuilt for every key."""
    pe, pr = F.col(f"{early}_map"), F.col(f"{recent}_map")
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


def decayed_by_category(hist: Column, half_life_s: float) -> Column:
    """The history's events of a known category as (c, w) sorted by category (then weight): w = 0.5 ** ((last
    event's ts - ts) / half_life). Its categories in order are the sorted known categories, so _histogram's runs of
    them index its runs (interest_sums)."""
    last_ts = F.element_at(hist, -1)["ts"]
    known = F.filter(hist, lambda e: e["category_idx"] > 0)
    return F.array_sort(F.transform(known, lambda e: F.struct(
        e["category_idx"].alias("c"), F.pow(F.lit(0.5), (last_ts - e["ts"]) / F.lit(float(half_life_s))).alias("w"))))


def interest_sums(decayed: str, prefix: str) -> Column:
    """category id -> the summed time-decayed weight of a history's events in it, from the column `decayed`
    (decayed_by_category) and the materialised histogram {prefix}_* of its categories: each category's run is
    summed once (linear; adding events into a map one by one was linear per event in the categories)."""
    first, n = F.col(f"{prefix}_first"), F.col(f"{prefix}_n")
    sums = F.transform(first, lambda f, i: F.aggregate(
        F.slice(F.col(decayed), f, F.coalesce(F.try_element_at(first, i + 2), n + 1) - f), F.lit(0.0),
        lambda acc, p: acc + p["w"]))
    return F.map_from_arrays(F.col(f"{prefix}_keys"), sums)


def interest_weights(sums: Column, k: int = INTEREST_CATEGORIES) -> list[Column]:
    """From a materialised interest_sums column: the k categories with the most weight, as interest_categories
    (ids, by descending weight, ties by smaller id) and interest_weights (each one's share of the total weight of
    all known categories; interest_core.tags reads them)."""
    total = F.aggregate(F.map_values(sums), F.lit(0.0), lambda acc, w: acc + w)
    ranked = F.slice(F.array_sort(F.transform(F.map_entries(sums), lambda e: F.struct(
        (-e["value"]).alias("neg_w"), e["key"].alias("c")))), 1, k)
    share = lambda e: F.when(total > 0, -e["neg_w"] / total).otherwise(F.lit(0.0))  # noqa: E731
    return [F.transform(ranked, lambda e: e["c"]).cast("array<int>").alias("interest_categories"),
            F.transform(ranked, share).alias("interest_weights")]


def eval_rows(split: DataFrame, which: str, max_len: int, item_train_counts: DataFrame,
              tag_half_life_days: float) -> DataFrame:
    """Rows of contract.EVAL_SCHEMA for which in {"valid", "test"}.

    top_categories, drift_score and the interest weights (interest_weights, half-life in days) use known categories
    only (category id 0 = unknown is left out). Like every feature of the row they read the history alone, never
    the target event.
    """
    hist, target = f"{which}_hist", f"{which}_target"
    df = split.where(F.col(target).isNotNull() & F.col(hist).isNotNull())
    h = F.size(hist)
    last = F.slice(hist, F.greatest(F.lit(1), h - max_len + 1), max_len)
    half = F.floor(h / 2).cast("int")
    cat = lambda e: e["category_idx"]  # noqa: E731
    early = F.filter(F.transform(F.slice(hist, 1, F.greatest(half, F.lit(1))), cat), lambda c: c > 0)
    recent = F.filter(F.transform(F.slice(hist, half + 1, h), cat), lambda c: c > 0)
    # Sorted categories, then histograms, are materialised as columns first, so later expressions (and lambdas)
    # reference them instead of recomputing them per element.
    df = df.select(
        "user_id", last.alias("last"), F.col(target).alias("t"), h.alias("history_len"), user_features(split),
        F.array_distinct(F.transform(hist, lambda e: e["item_idx"])).alias("seen_items"),
        (F.col(target)["ts"] - F.element_at(hist, -1)["ts"]).alias("time_since_last"),
        decayed_by_category(F.col(hist), tag_half_life_days * 86400).alias("_decayed"),
        *[F.array_sort(c).alias(f"_srt_{name}") for c, name in ((early, "early"), (recent, "recent"))])
    df = df.select("*", F.transform("_decayed", lambda p: p["c"]).alias("_srt_all"))
    df = df.select("*", *[x for name in ("all", "early", "recent") for x in _histogram(f"_srt_{name}", name)])
    df = df.select("*", interest_sums("_decayed", "all").alias("_interest_sums"), _count_map("early"),
                   _count_map("recent"))
    df = df.select("*", _top_categories("all").alias("top_categories"), *interest_weights(F.col("_interest_sums")),
                   F.when(F.col("history_len") >= 2, js_divergence("early", "recent"))
                   .otherwise(F.lit(0.0)).alias("drift_score"))
    counts = item_train_counts.select(F.col("item_idx").alias("_idx"), F.col("train_count").alias("_tc"))
    df = df.join(counts, F.col("t")["item_idx"] == F.col("_idx"), how="left")
    return df.select(
        "user_id", *_unzip("last"),
        F.col("t")["item_idx"].alias("target_item"), F.col("t")["event_type_idx"].alias("target_event_type"),
        F.col("t")["ts"].alias("target_ts"), F.col("t")["category_idx"].alias("target_category"),
        "history_len", "seen_items", "top_categories", "time_since_last", "drift_score",
        (F.coalesce(F.col("_tc"), F.lit(0)) == 0).alias("target_is_cold_item"), "interest_categories",
        "interest_weights", "user_features").select(*EVAL_COLUMNS)


def decay_rows(split: DataFrame, which: str, max_len: int, end_ts: int, buy_type: int | None) -> DataFrame:
    """Rows of contract.DECAY_SCHEMA for which in {"valid", "test"} (split=time): every user with a history up to
    the observation end `end_ts` (V or C), its last max_len events, its label ("any event in (end, end + H]"),
    and the recency / frequency / repeat-day features of the whole history that the classical baselines read
    (BG/NBD's calibration summary on UTC days: x = active days - 1, t_x = last - first active day, T = end - the
    first active day's start; so x = 0 means t_x = 0, as the model requires)."""
    hist = f"{which}_hist"
    df = split.where(F.col(hist).isNotNull())
    h = F.size(hist)
    first_ts, last_ts = F.element_at(hist, 1)["ts"], F.element_at(hist, -1)["ts"]
    days = F.array_distinct(F.transform(hist, lambda e: F.floor(e["ts"] / 86400)))
    bought = (F.array_distinct(F.transform(F.filter(hist, lambda e: e["event_type_idx"] == buy_type),
                                           lambda e: e["item_idx"]))
              if buy_type is not None else F.array().cast("array<int>"))
    last = F.slice(hist, F.greatest(F.lit(1), h - max_len + 1), max_len)
    return df.select(
        "user_id", *_unzip(last), F.lit(end_ts).cast("long").alias("end_ts"),
        F.col(f"{which}_decay_label").alias("label"), h.cast("int").alias("history_len"),
        (h - F.size(last)).cast("int").alias("n_before"), first_ts.alias("first_ts"),
        *_before(F.col(hist), h - F.size(last), buy_type),
        ((F.lit(end_ts) - last_ts) / 86400.0).alias("recency_days"),
        F.size(F.filter(hist, lambda e: e["ts"] > end_ts - 90 * 86400)).cast("int").alias("frequency_90d"),
        (F.size(days) - 1).cast("int").alias("bg_x"),
        (F.floor(last_ts / 86400) - F.floor(first_ts / 86400)).cast("double").alias("bg_t_x"),
        (F.lit(end_ts / 86400) - F.floor(first_ts / 86400)).alias("bg_T"), bought.alias("bought_items")
    ).select(*DECAY_COLUMNS)


def drift_rows(split: DataFrame, which: str, max_events: int, end_ts: int | None) -> DataFrame:
    """Rows of contract.DRIFT_SCHEMA for which in {"valid", "test"}: every user with a history, its last
    max_events events (the interest-migration windows are cut from them: interest_core.drift) and the end of
    observation: end_ts under split=time (V or C), the last history event's time under leave-one-out."""
    hist = f"{which}_hist"
    df = split.where(F.col(hist).isNotNull())
    h = F.size(hist)
    last = F.slice(hist, F.greatest(F.lit(1), h - max_events + 1), max_events)
    end = F.lit(end_ts).cast("long") if end_ts is not None else F.element_at(hist, -1)["ts"]
    return df.select("user_id", *_unzip(last), end.alias("end_ts"), h.cast("int").alias("history_len"),
                     (h - F.size(last)).cast("int").alias("n_before")).select(*DRIFT_COLUMNS)


def item_train_counts(split: DataFrame) -> DataFrame:
    """item_idx, train_count: occurrences in the training part of every user's history."""
    ev = split.where(F.col("train_ev").isNotNull()).select(F.explode("train_ev").alias("e"))
    return ev.groupBy(F.col("e")["item_idx"].alias("item_idx")).agg(F.count(F.lit(1)).alias("train_count"))
