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

from functools import partial

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from interest_core import arrow_lists, history_features, window_rows
from interest_core.contract import DECAY_SCHEMA, DRIFT_SCHEMA, EVAL_COLUMNS, TRAIN_SCHEMA
from interest_core.windows import WindowRule

_EV = ("ts", "src_file", "src_row", "item_idx", "event_type_idx", "category_idx")  # sorted in this order


def _with_dt(ev: str) -> Column:
    """Adds dt, the gap in seconds to the user's previous event (0 for the first). Computed on the whole history,
    so a training window that starts mid-history still carries the true gap at its first position. `ev` names a
    column: an expression read inside the lambda would be recomputed for every element (quadratic)."""
    return F.transform(ev, lambda e, i: e.withField(
        "dt", F.when(i == 0, F.lit(0).cast("long")).otherwise(e["ts"] - F.col(ev)[i - 1]["ts"])))


def basket_starts(ev: str) -> Column:
    """array<boolean> aligned with `ev` (sorted; fields ts and session_id): True where a basket starts. Events that
    share a time or a session id (an invoice) are one basket: a basket starts at the first event and at every event
    whose time and session both differ from the event before it (a null session is no one's)."""
    prev = lambda i: F.col(ev)[i - 1]  # noqa: E731
    return F.transform(ev, lambda e, i: (i == 0) | ((e["ts"] != prev(i)["ts"]) & ~F.coalesce(
        e["session_id"] == prev(i)["session_id"], F.lit(False))))


def user_sequences(events: DataFrame, keys: tuple[str, ...] = ("user_id",)) -> DataFrame:
    """Indexed events -> keys, ev: array<struct<ts, item_idx, event_type_idx, category_idx, dt>>, oldest first. With a
    boolean `held` column (index_sequences: the cold-item holdout), also held_out: array<boolean>, aligned with ev;
    with a session_id column (the basket rule, data.baskets), basket_start (basket_starts), aligned likewise."""
    extra = [c for c in ("held", "session_id") if c in events.columns]
    # named _ev: in the select below, "ev" would be the new column (Spark resolves a select's own aliases)
    seqs = events.groupBy(*keys).agg(F.array_sort(F.collect_list(F.struct(*_EV, *extra))).alias("_ev"))
    ev = F.transform("_ev", lambda e: F.struct(*[e[c].alias(c) for c in ("ts", "item_idx", "event_type_idx",
                                                                          "category_idx")]))
    aligned = ([F.transform("_ev", lambda e: e["held"]).alias("held_out")] if "held" in extra else []) + (
        [basket_starts("_ev").alias("basket_start")] if "session_id" in extra else [])
    names = [a for a, c in (("held_out", "held"), ("basket_start", "session_id")) if c in extra]
    return seqs.select(*keys, ev.alias("ev"), *aligned).select(*keys, _with_dt("ev").alias("ev"), *names)


def index_sequences(lists: DataFrame, item_index: DataFrame, event_types: list[str],
                    broadcast_items: bool, cold_items: float = 0.0) -> DataFrame:
    """Deduped per-user lists of (ts, item_id, event_type) with each user's pseudonym (pid) -> the indexed sequences
    of user_sequences, user_id = the pseudonym; with cold_items > 0 also held_out (mark_held_out_items' column).

    The lists are already partitioned by the input's user id, so exploding them, joining the item index (broadcast
    when it is small enough) and collecting again by (user id, pseudonym) needs no second shuffle of the events.
    """
    etype_idx = F.create_map(*[F.lit(x) for i, t in enumerate(event_types) for x in (t, i + 1)])
    index = item_index.select("item_id", "item_idx", "category_idx")
    flat = lists.select("user_id", "pid", F.explode("ev").alias("e"))
    joined = flat.join(F.broadcast(index) if broadcast_items else index,
                       F.col("e.item_id") == index["item_id"], how="inner")
    held = [held_out_item(F.col("e.item_id"), cold_items).alias("held")] if cold_items > 0 else []
    session = [F.col("e.session_id").alias("session_id")] if "session_id" in _ev_fields(lists) else []
    indexed = joined.select("user_id", "pid", F.col("e.ts").alias("ts"), F.col("e.src_file").alias("src_file"),
                            F.col("e.src_row").alias("src_row"), "item_idx",
                            etype_idx[F.col("e.event_type")].alias("event_type_idx"), "category_idx", *held,
                            *session)
    seqs = user_sequences(indexed, keys=("user_id", "pid"))
    return seqs.select(F.col("pid").alias("user_id"), *[c for c in seqs.columns if c not in ("user_id", "pid")])


def _ev_fields(df: DataFrame) -> list[str]:
    return df.schema["ev"].dataType.elementType.names


def split_sequences(seqs: DataFrame, split: str, cutoff_ts: int | None = None,
                    horizon_s: int | None = None) -> DataFrame:
    """Adds train_ev (+ train_end, the time its observation ends: split=time only), valid_hist/valid_target,
    test_hist/test_target, for split=time the decay labels of every user with a history: valid_decay_label,
    test_decay_label (decay_rows reads them with valid_hist / test_hist), and the held-out events of the
    next-action evaluation: action_ev (the history up to the end of the test period) and action_from (1-based
    position of its first held-out event): the last event under leave-one-out, the events in (C, C + H] under
    split=time (users with events on both sides of C only). Columns of seqs besides user_id and ev pass through.
    Every column is an expression of ev alone, so the split is cut where it is read, not stored. With a basket_start
    column (data.baskets) leave-one-out holds out baskets instead of events (_leave_one_basket_out)."""
    keep = [c for c in seqs.columns if c not in ("user_id", "ev", "basket_start")]
    n = F.size("ev")
    if split == "leave-one-out" and "basket_start" in seqs.columns:
        return _leave_one_basket_out(seqs, keep)
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
            F.when(n >= 2, F.col("ev")).alias("action_ev"), F.when(n >= 2, n).cast("int").alias("action_from"), *keep)
    if split != "time" or cutoff_ts is None or horizon_s is None:
        raise ValueError("split='time' needs --cutoff DATE and --horizon-days N")
    v = cutoff_ts - horizon_s
    upto = lambda t: F.filter("ev", lambda e: e["ts"] <= t)  # noqa: E731
    after = lambda t: F.filter("ev", lambda e: e["ts"] > t)  # noqa: E731
    parts = seqs.select("user_id", upto(v).alias("pv"), upto(cutoff_ts).alias("pc"),
                        after(v).alias("fv"), after(cutoff_ts).alias("fc"), upto(cutoff_ts + horizon_s).alias("ph"),
                        *keep)
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
        .alias("action_from"), *keep)


def _leave_one_basket_out(seqs: DataFrame, keep: list[str]) -> DataFrame:
    """Leave-one-out by basket (basket_start: basket_starts): the test target is the last event of the last basket,
    its history the baskets before; the validation target the last event of the basket before, its history the
    baskets before that; training reads those (a user with one basket has no target: every event trains). The
    next-action rows score the first event of the last basket. So no basket is divided between a target and the
    history or the training events it is predicted from."""
    starts = F.filter(F.transform("basket_start", lambda b, i: F.when(b, i + 1)), lambda p: p.isNotNull())
    s = seqs.select("*", starts.alias("_starts"))
    n, baskets = F.size("ev"), F.size("_starts")
    last = F.element_at("_starts", F.greatest(baskets, F.lit(1)))  # where the last basket starts (1-based)
    prev = F.element_at("_starts", F.greatest(baskets - 1, F.lit(1)))  # and the one before it
    before = lambda p: F.slice("ev", F.lit(1), p - 1)  # noqa: E731  the events before position p
    none = F.lit(None)
    return s.select(
        "user_id",
        F.when(baskets >= 3, before(prev)).when(baskets == 2, before(last)).otherwise(F.col("ev")).alias("train_ev"),
        none.cast("long").alias("train_end"),
        F.when(baskets >= 3, before(prev)).alias("valid_hist"),
        F.when(baskets >= 3, F.element_at("ev", last - 1)).alias("valid_target"),
        F.when(baskets >= 2, before(last)).alias("test_hist"), F.when(baskets >= 2, F.element_at("ev", n))
        .alias("test_target"),
        none.cast("int").alias("valid_decay_label"), none.cast("int").alias("test_decay_label"),
        F.when(baskets >= 2, F.slice("ev", F.lit(1), last)).alias("action_ev"),
        F.when(baskets >= 2, last).cast("int").alias("action_from"), *keep)


COLD_ITEMS_SEED = 20_241  # the hash seed of the cold-item holdout (a fixed choice: reruns hold out the same items)


def held_out_item(item_id: Column, fraction: float) -> Column:
    """True for the items of the zero-shot holdout (data.cold_items): a hash of the item's id in the input (never its
    index, which the training counts decide) below the fraction."""
    bucket = F.pmod(F.xxhash64(item_id.cast("string"), F.lit(COLD_ITEMS_SEED)), F.lit(1_000_000))
    return bucket < F.lit(int(round(fraction * 1_000_000)))


def mark_held_out_items(lists: DataFrame, fraction: float) -> DataFrame:
    """Adds held_out (array<boolean>, aligned with ev) to per-user lists whose events carry item_id; fraction 0 = off
    (index_sequences marks indexed sequences the same way)."""
    if fraction <= 0:
        return lists
    return lists.withColumn("held_out", F.transform("ev", lambda e: held_out_item(e["item_id"], fraction)))


def hold_out_items(split: DataFrame, fraction: float) -> DataFrame:
    """Removes the held-out items' events (held_out, aligned with ev) from train_ev (null when nothing is left), so
    they get no training window, training count or graph edge; their valid/test targets and their places in
    histories stay. train_ev is a prefix of ev under both splits, so its i-th event is ev's. fraction 0 = off."""
    if fraction <= 0:
        return split
    kept = F.filter("train_ev", lambda e, i: ~F.col("held_out")[i])
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


def split_and_hold_out(seqs: DataFrame, d) -> DataFrame:
    """The split (split_sequences) and the holdouts of data config d (hold_out_items, hold_out_users): one rule for
    the indexed sequences and for the lists whose training counts decide the vocabulary."""
    split = split_sequences(seqs, d.split, d.cutoff_ts, d.horizon_s)
    return hold_out_users(hold_out_items(split, d.cold_items), d.cold_users, d.cold_user_max_events)


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


def training_windows(split: DataFrame, rule: WindowRule, buy_type: int | None = None) -> DataFrame:
    """One row per window of at most max_len + 1 events, counted back from the most recent event, with the
    position of its first scored target (interest_core.windows), the number of the user's events before the
    window (n_before), the time of the user's first event (first_ts), and the distinct days and buys before
    the window (interest_core.window_rows)."""
    return _windows(with_censoring_marker(split), "train_ev", rule, buy_type)


def action_windows(split: DataFrame, rule: WindowRule, buy_type: int | None = None) -> DataFrame:
    """TRAIN_SCHEMA rows that the next-action evaluation scores: the windows of action_ev (split_sequences) that
    hold a held-out event, with first_target moved up to the first of them. Every held-out event is scored once,
    in the window the rule scores it in, with the left context training would give it; no earlier event is."""
    return _windows(split, "action_ev", rule, buy_type, scored_from="action_from")


def _windows(split: DataFrame, col: str, rule: WindowRule, buy_type: int | None,
             scored_from: str | None = None) -> DataFrame:
    """The window rows of `col`, cut in one vectorized pass per partition (interest_core.window_rows). Narrow: the
    rows keep the split's partitioning and order (windows in order inside a user)."""
    df = split.where(F.col(col).isNotNull() & (F.size(col) >= 2)).select(
        "user_id", F.col(col).alias("ev"), user_features(split),
        *([F.col(scored_from).alias("scored_from")] if scored_from else []))
    return df.mapInArrow(partial(arrow_lists.batches, window_rows.windows, rule=rule, buy_type=buy_type,
                                 scored=scored_from is not None), from_arrow_schema(TRAIN_SCHEMA))


def user_features(split: DataFrame) -> Column:
    """The per-user frame's user_features (spark_jobs/users.attach), an empty list when it has none."""
    return (F.col("user_features") if "user_features" in split.columns
            else F.array().cast("array<int>")).alias("user_features")


def eval_rows(split: DataFrame, which: str, max_len: int, item_train_counts: DataFrame,
              tag_half_life_days: float) -> DataFrame:
    """Rows of contract.EVAL_SCHEMA for which in {"valid", "test"}: the features of each user's history are
    computed in one vectorized pass per partition (interest_core.history_features, where they are defined), the
    training counts then mark a cold target. Like every feature of the row they read the history alone, never the
    target event. Narrow: the rows keep the split's partitioning and order."""
    hist, target = f"{which}_hist", f"{which}_target"
    df = split.where(F.col(target).isNotNull() & F.col(hist).isNotNull()).select(
        "user_id", F.col(hist).alias("hist"), F.col(target).alias("t"), user_features(split))
    feats = df.mapInArrow(partial(arrow_lists.batches, history_features.eval_features, max_len=max_len,
                                  half_life_s=tag_half_life_days * 86400.0),
                          from_arrow_schema(history_features.EVAL_FEATURE_SCHEMA))
    counts = item_train_counts.select(F.col("item_idx").alias("_idx"), F.col("train_count").alias("_tc"))
    return feats.join(counts, F.col("target_item") == F.col("_idx"), how="left").withColumn(
        "target_is_cold_item", F.coalesce(F.col("_tc"), F.lit(0)) == 0).select(*EVAL_COLUMNS)


def decay_rows(split: DataFrame, which: str, max_len: int, end_ts: int, buy_type: int | None) -> DataFrame:
    """Rows of contract.DECAY_SCHEMA for which in {"valid", "test"} (split=time): every user with a history up to
    the observation end `end_ts` (V or C), its last max_len events, its label ("any event in (end, end + H]"),
    and the recency / frequency / repeat-day features of the whole history that the classical baselines read
    (interest_core.history_features.decay_features, one vectorized pass per partition)."""
    df = split.where(F.col(f"{which}_hist").isNotNull()).select(
        "user_id", F.col(f"{which}_hist").alias("hist"), F.col(f"{which}_decay_label").alias("label"))
    return df.mapInArrow(partial(arrow_lists.batches, history_features.decay_features, max_len=max_len,
                                 end_ts=end_ts, buy_type=buy_type), from_arrow_schema(DECAY_SCHEMA))


def drift_rows(split: DataFrame, which: str, max_events: int, end_ts: int | None) -> DataFrame:
    """Rows of contract.DRIFT_SCHEMA for which in {"valid", "test"}: every user with a history, its last
    max_events events (the interest-migration windows are cut from them: interest_core.drift) and the end of
    observation: end_ts under split=time (V or C), the last history event's time under leave-one-out."""
    df = split.where(F.col(f"{which}_hist").isNotNull()).select("user_id", F.col(f"{which}_hist").alias("hist"))
    return df.mapInArrow(partial(arrow_lists.batches, history_features.drift_features, max_events=max_events,
                                 end_ts=end_ts), from_arrow_schema(DRIFT_SCHEMA))


def item_train_counts(split: DataFrame) -> DataFrame:
    """item_idx, train_count: occurrences in the training part of every user's history."""
    ev = split.where(F.col("train_ev").isNotNull()).select(F.explode("train_ev").alias("e"))
    return ev.groupBy(F.col("e")["item_idx"].alias("item_idx")).agg(F.count(F.lit(1)).alias("train_count"))
