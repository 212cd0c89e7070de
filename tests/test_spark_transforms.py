"""Each ETL stage on a few inline rows with edge cases; results compared row by row."""
import hashlib
import hmac

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from interest_core.config import DataConfig
from interest_core.windows import WindowRule
from spark_jobs import graph, ingest, pseudonymize, sequences, validate, vocab
from spark_jobs.dedupe import user_event_lists
from spark_jobs.etl import QuarantineLimitExceeded, check_quarantine

RAW_COLS = "raw string, source string, parse_error string, user_id string, item_id string, event_type string, " \
           "ts string, session_id string, quantity string, price string, category string"
NOW = 1_900_000_000


def _raw(spark, rows):
    full = [(r.get("raw", "x"), "f", r.get("parse_error"), r.get("user_id", "u1"), r.get("item_id", "i1"),
             r.get("event_type", "view"), r.get("ts", "1700000000"), None, r.get("quantity"), r.get("price"), None)
            for r in rows]
    return spark.createDataFrame(full, RAW_COLS)


def test_parse_ts_detects_units(spark):
    df = spark.createDataFrame([("1700000000",), ("1700000000123",), ("2023-11-14T22:13:20Z",),
                                ("2023-11-14 22:13:20",), ("yesterday",), ("1e400",)], "ts string")
    out = df.select(validate.parse_ts(df.ts).alias("s"))
    assertDataFrameEqual(out, [Row(s=1700000000), Row(s=1700000000), Row(s=1700000000), Row(s=1700000000),
                               Row(s=None), Row(s=None)])


def test_every_rejection_has_a_reason(spark):
    rules = validate.rules_from_config(DataConfig(max_id_length=8), now=NOW)
    raw = _raw(spark, [
        {"raw": "ok"},
        {"raw": "pe", "parse_error": "wrong_column_count"},
        {"raw": "nu", "user_id": " "},
        {"raw": "ni", "item_id": None},
        {"raw": "nt", "ts": None},
        {"raw": "bt", "ts": "not-a-time"},
        {"raw": "old", "ts": "10"},
        {"raw": "fut", "ts": str(NOW + 10 * 86400)},
        {"raw": "et", "event_type": "teleport"},
        {"raw": "nq", "quantity": "-1"},
        {"raw": "np", "price": "-3.5"},
        {"raw": "bn", "price": "cheap"},
        {"raw": "long", "item_id": "i" * 9},
    ])
    got = validate.with_reason(raw, rules).select("raw", "reason")
    assertDataFrameEqual(got, [
        Row(raw="ok", reason=None), Row(raw="pe", reason="wrong_column_count"),
        Row(raw="nu", reason="missing_user"), Row(raw="ni", reason="missing_item"),
        Row(raw="nt", reason="missing_ts"), Row(raw="bt", reason="unparseable_ts"),
        Row(raw="old", reason="ts_out_of_range"), Row(raw="fut", reason="ts_in_future"),
        Row(raw="et", reason="unknown_event_type"), Row(raw="nq", reason="negative_quantity"),
        Row(raw="np", reason="negative_price"), Row(raw="bn", reason="unparseable_number"),
        Row(raw="long", reason="id_too_long")])


def test_read_delimited_flags_column_count_and_bad_utf8(spark, tmp_path):
    f = tmp_path / "UserBehavior.csv"
    f.write_bytes(b"1,10,3,pv,1700000000\n1,10,3\n1,10,3,pv,1700000000,extra\n2,\xff\xfe,3,pv,1700000001\n")
    df = ingest.read_delimited(spark, [str(f)], ["user_id", "item_id", "category", "event_type", "ts"], ",", False)
    got = df.select("user_id", "parse_error")
    assertDataFrameEqual(got, [Row(user_id="1", parse_error=None),  # a miscounted row keeps no field, not even its user
                               Row(user_id=None, parse_error="wrong_column_count: expected 5 fields, found 3"),
                               Row(user_id=None, parse_error="wrong_column_count: expected 5 fields, found 6"),
                               Row(user_id="2", parse_error="invalid_utf8")])


def test_event_synonyms_and_column_map(spark):
    df = spark.createDataFrame([("PV",), ("addtocart",), ("transaction",), ("weird",)], "e string")
    assertDataFrameEqual(df.select(ingest.normalize_event_type(df.e).alias("e")),
                         [Row(e="view"), Row(e="cart"), Row(e="buy"), Row(e="weird")])
    assert ingest.parse_column_map("user_id=visitor, ts=time") == {"user_id": "visitor", "ts": "time"}
    with pytest.raises(ValueError, match="not a canonical column"):
        ingest.parse_column_map("visitor=user_id")


def test_quarantine_threshold_names_fraction_and_reasons():
    assert check_quarantine({None: 99, "missing_user": 1}, 0.05)["fraction"] == pytest.approx(0.01)
    with pytest.raises(QuarantineLimitExceeded, match=r"10.00% of 100 .* threshold 5.00%.*unparseable_ts=7"):
        check_quarantine({None: 90, "unparseable_ts": 7, "missing_user": 3}, 0.05)


def test_dedupe_keeps_first_occurrences_in_input_order(spark):
    # (src_file, src_row) is the input position; at ts 1 the input lists j before i, and i:view twice
    df = spark.createDataFrame([("u", "j", "view", 1, 0, 7), ("u", "i", "view", 1, 0, 8), ("u", "i", "view", 1, 1, 0),
                                ("u", "i", "buy", 1, 1, 1), ("u", "i", "view", 2, 0, 2), ("w", "i", "view", 1, 0, 3)],
                               "user_id string, item_id string, event_type string, ts long, src_file int, src_row long")
    got = user_event_lists(df).select("user_id", F.transform("ev", lambda e: F.concat_ws(
        ":", e["ts"], e["item_id"], e["event_type"], e["src_file"], e["src_row"])).alias("ev"), "n_raw")
    assertDataFrameEqual(got, [Row(user_id="u", ev=["1:j:view:0:7", "1:i:view:0:8", "1:i:buy:1:1", "2:i:view:0:2"],
                                   n_raw=5),
                               Row(user_id="w", ev=["1:i:view:0:3"], n_raw=1)])


def test_pseudonymize_is_keyed_hmac_and_key_stays_out_of_plans(spark):
    key = b"k" * 32
    df = spark.createDataFrame([("alice", 1), ("bob", 2)], "user_id string, n int")
    out = pseudonymize.pseudonymize_users(df, key)
    expected = [Row(user_id=hmac.new(key, u.encode(), hashlib.sha256).hexdigest(), n=n) for u, n in
                [("alice", 1), ("bob", 2)]]
    assertDataFrameEqual(out, expected)
    plan = out._jdf.queryExecution().toString()
    assert "kkkk" not in plan and "alice" not in str(out.collect())


def test_key_id_is_salted_and_still_identifies_the_key():
    key, other = b"k" * 32, b"j" * 32
    a, b = pseudonymize.key_id(key), pseudonymize.key_id(key)
    assert a != b  # a fresh salt: no table of ids computed from candidate keys matches
    assert pseudonymize.key_matches(key, a) and pseudonymize.key_matches(key, b)
    assert not pseudonymize.key_matches(other, a)
    assert key.decode() not in a and hashlib.sha256(key).hexdigest()[:16] not in a


def test_pseudonymize_refuses_without_key(monkeypatch):
    monkeypatch.delenv(pseudonymize.ENV_VAR, raising=False)
    with pytest.raises(pseudonymize.PseudonymKeyError, match="INTEREST_HMAC_KEY.*--allow-insecure-demo-key"):
        pseudonymize.load_key()
    monkeypatch.setenv(pseudonymize.ENV_VAR, "short")
    with pytest.raises(pseudonymize.PseudonymKeyError, match="at least 16"):
        pseudonymize.load_key()


def test_item_vocab_orders_by_training_count_then_id_and_maps_rare_to_oov(spark):
    lists = spark.createDataFrame([("u", [(1, i, "view") for i in ["b", "a", "a", "c", "e"]]),
                                   ("w", [(0, i, "view") for i in ["c", "b", "d", "e"]])],
                                  "user_id string, ev array<struct<ts long, item_id string, event_type string>>")
    split = sequences.split_sequences(lists, "leave-one-out")  # trains on u: b a a, w: c b
    counts = vocab.item_counts(lists, split, ["view", "buy"])
    assertDataFrameEqual(counts.select("item_id", "count", "first_seen_ts", "train_count", "train_type_0"), [
        Row(item_id="a", count=2, first_seen_ts=1, train_count=2, train_type_0=2),
        Row(item_id="b", count=2, first_seen_ts=0, train_count=2, train_type_0=2),
        Row(item_id="c", count=2, first_seen_ts=0, train_count=1, train_type_0=1),
        Row(item_id="d", count=1, first_seen_ts=0, train_count=0, train_type_0=0),
        Row(item_id="e", count=2, first_seen_ts=0, train_count=0, train_type_0=0)])
    assert vocab.train_event_type_counts(counts, ["view", "buy"]) == {"view": 5, "buy": 0}
    # e occurs twice, both times as a valid/test target: its total count never earns it an id
    got = vocab.item_vocab(counts, min_count=1)
    assertDataFrameEqual(got, [Row(item_id="a", count=2, item_idx=2), Row(item_id="b", count=2, item_idx=3),
                               Row(item_id="c", count=2, item_idx=4), Row(item_id="d", count=1, item_idx=1),
                               Row(item_id="e", count=2, item_idx=1)])
    # an item with catalog content keeps an id without training events (after the frequent ones, by id)
    catalog = spark.createDataFrame([("d", "Dee", None, None), ("e", " ", None, None)],
                                    "item_id string, title string, description string, category string")
    got = vocab.item_vocab(counts, min_count=2, content=vocab.content_items(catalog))
    assertDataFrameEqual(got, [Row(item_id="a", count=2, item_idx=2), Row(item_id="b", count=2, item_idx=3),
                               Row(item_id="d", count=1, item_idx=4), Row(item_id="c", count=2, item_idx=1),
                               Row(item_id="e", count=2, item_idx=1)])


def test_index_sequences_maps_ids_and_sorts(spark):
    lists = spark.createDataFrame([("u", "pseudo", [(5, 0, 0, "b", "buy"), (5, 0, 1, "a", "view"),
                                                    (9, 0, 2, "zz", "cart")])],
                                  "user_id string, pid string, ev array<struct<ts long, src_file int, src_row long, "
                                  "item_id string, event_type string>>")
    index = spark.createDataFrame([("a", 3, 7), ("b", 2, 0), ("zz", 1, 0)], "item_id string, item_idx int, "
                                                                          "category_idx int")
    for bc in (True, False):
        row = sequences.index_sequences(lists, index, ["view", "click", "cart", "fav", "buy"], bc).first()
        assert row.user_id == "pseudo" and "held_out" not in row.asDict()
        assert [tuple(e) for e in row.ev] == [(5, 2, 5, 0, 0), (5, 3, 1, 7, 0), (9, 1, 3, 0, 4)]
    # the cold-item holdout marks each event by its item's id, the same rule as on the lists
    row = sequences.index_sequences(lists, index, ["view", "click", "cart", "fav", "buy"], True, 0.5).first()
    marked = sequences.mark_held_out_items(lists, 0.5).first()
    assert row.held_out == marked.held_out and len(row.held_out) == 3


def _indexed(spark, rows):
    """Indexed events in input order (src_row = the row's position in `rows`)."""
    return spark.createDataFrame([(u, ts, 0, n, *rest) for n, (u, ts, *rest) in enumerate(rows)],
                                 "user_id string, ts long, src_file int, src_row long, item_idx int, "
                                 "event_type_idx int, category_idx int")


def test_leave_one_out_split_is_leakage_free(spark):
    # u4: 4 events (at ts 2, item 6 comes before item 3 in the input and stays before it); u2: 2 events; u1: 1
    ev = _indexed(spark, [("u4", 1, 5, 1, 1), ("u4", 2, 6, 1, 1), ("u4", 2, 3, 2, 2), ("u4", 9, 7, 5, 3),
                          ("u2", 1, 2, 1, 1), ("u2", 5, 4, 1, 1), ("u1", 3, 2, 1, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")
    items = lambda c: [e["item_idx"] for e in c] if c is not None else None  # noqa: E731
    got = {r.user_id: (items(r.train_ev), items(r.valid_hist), r.valid_target and r.valid_target["item_idx"],
                       items(r.test_hist), r.test_target and r.test_target["item_idx"]) for r in split.collect()}
    assert got == {"u4": ([5, 6], [5, 6], 3, [5, 6, 3], 7),
                   "u2": ([2], None, None, [2], 4),
                   "u1": (None, None, None, None, None)}


def test_leave_one_basket_out_never_divides_a_basket(spark):
    """data.baskets: events that share a time or a session are one basket. u3 has 4 baskets: {5, 6} (one time),
    {3 at 4, 8 at 5} (one invoice over two times), {7}, {9, 2} (one time, no session); u2 2 baskets; u1 one."""
    rows = [("u3", 1, 5, "a"), ("u3", 1, 6, "b"), ("u3", 4, 3, "c"), ("u3", 5, 8, "c"), ("u3", 7, 7, "d"),
            ("u3", 9, 9, None), ("u3", 9, 2, None), ("u2", 1, 2, "e"), ("u2", 1, 4, "e"), ("u2", 3, 6, "f"),
            ("u1", 3, 2, "g"), ("u1", 3, 4, "g")]
    ev = spark.createDataFrame([(u, ts, 0, n, item, 1, 1, s) for n, (u, ts, item, s) in enumerate(rows)],
                               "user_id string, ts long, src_file int, src_row long, item_idx int, "
                               "event_type_idx int, category_idx int, session_id string")
    seqs = sequences.user_sequences(ev)
    assert {r.user_id: r.basket_start for r in seqs.collect()}["u3"] == [True, False, True, False, True, True, False]
    split = sequences.split_sequences(seqs, "leave-one-out")
    assert "basket_start" not in split.columns
    items = lambda c: [e["item_idx"] for e in c] if c is not None else None  # noqa: E731
    got = {r.user_id: (items(r.train_ev), items(r.valid_hist), r.valid_target and r.valid_target["item_idx"],
                       items(r.test_hist), r.test_target and r.test_target["item_idx"], items(r.action_ev),
                       r.action_from) for r in split.collect()}
    assert got == {"u3": ([5, 6, 3, 8], [5, 6, 3, 8], 7, [5, 6, 3, 8, 7], 2, [5, 6, 3, 8, 7, 9], 6),
                   "u2": ([2, 4], None, None, [2, 4], 6, [2, 4, 6], 3),
                   "u1": ([2, 4], None, None, None, None, None, None)}


def test_cold_item_holdout_removes_only_training_events(spark):
    rows = [("u1", t, i, 1, 1) for t, i in enumerate(range(2, 42))] + [("u2", t, i, 1, 1) for t, i in
                                                                       enumerate(range(41, 1, -1))]
    seqs = sequences.user_sequences(_indexed(spark, rows))
    # the holdout hashes the item's id in the input (here its index's text stands for it), never the index
    held = {r.i for r in spark.range(2, 42).select(
        F.col("id").alias("i"), sequences.held_out_item(F.col("id").cast("string"), 0.3).alias("h")).collect() if r.h}
    assert 4 <= len(held) <= 20  # about 30% of 40 items
    marks = F.transform("ev", lambda e: sequences.held_out_item(e["item_idx"].cast("string"), 0.3))
    split = sequences.split_sequences(seqs.withColumn("held_out", marks), "leave-one-out")
    cold = sequences.hold_out_items(split, 0.3).collect()
    for before, after in zip(sorted(split.collect()), sorted(cold)):
        train = [e["item_idx"] for e in after.train_ev]
        assert train == [e["item_idx"] for e in before.train_ev if e["item_idx"] not in held]
        assert after.test_hist == before.test_hist and after.test_target == before.test_target
        assert after.valid_target == before.valid_target
    assert sequences.hold_out_items(split, 0.0) is split
    counts = {r.item_idx: r.train_count for r in sequences.item_train_counts(sequences.hold_out_items(split, 0.3))
              .collect()}
    assert not held & set(counts)


def test_time_split_validates_before_the_cutoff_and_labels_decay(spark):
    # cutoff C = 100, horizon H = 50 -> V = 50: train <= 50, valid target in (50, 100], test target after 100
    ev = _indexed(spark, [("a", 10, 2, 1, 1), ("a", 20, 3, 1, 1), ("a", 60, 4, 1, 1), ("a", 120, 5, 1, 1),
                          ("a", 300, 7, 1, 1), ("b", 10, 2, 1, 1), ("b", 20, 3, 1, 1), ("b", 45, 6, 1, 1),
                          ("c", 70, 8, 1, 1), ("c", 80, 9, 1, 1), ("d", 10, 2, 1, 1), ("d", 200, 5, 1, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "time", cutoff_ts=100, horizon_s=50)
    items = lambda c: [e["item_idx"] for e in c] if c is not None else None  # noqa: E731
    item = lambda e: e and e["item_idx"]  # noqa: E731
    got = {r.user_id: (items(r.train_ev), r.train_end, item(r.valid_target), items(r.test_hist),
                       item(r.test_target), r.valid_decay_label, r.test_decay_label) for r in split.collect()}
    assert got == {"a": ([2, 3], 50, 4, [2, 3, 4], 5, 1, 1),  # events at 60 in (50, 100], 120 in (100, 150]
                   "b": ([2, 3, 6], 50, None, [2, 3, 6], None, 0, 0),  # silent after 45
                   "c": (None, None, None, [8, 9], None, None, 0),  # new after V: test history only
                   "d": ([2], 50, None, [2], 5, 0, 0)}  # back at 200: after both label windows


def test_time_split_training_ends_with_a_censoring_marker(spark):
    ev = _indexed(spark, [("a", 10, 2, 1, 1), ("a", 20, 3, 1, 1), ("a", 60, 4, 1, 1), ("d", 10, 2, 1, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "time", cutoff_ts=100, horizon_s=50)
    got = sequences.training_windows(split, WindowRule(max_len=3, stride=3)).select(
        "user_id", "items", "ts", "dt", "first_target", "n_before", "first_ts")
    # the marker (item 0 at V = 50) makes the silent gap after the last training event a target; a user with one
    # training event gets a window too (its only target is the censored gap)
    assertDataFrameEqual(got, [Row(user_id="a", items=[2, 3, 0], ts=[10, 20, 50], dt=[0, 10, 30], first_target=1,
                                   n_before=0, first_ts=10),
                               Row(user_id="d", items=[2, 0], ts=[10, 50], dt=[0, 40], first_target=1, n_before=0,
                                   first_ts=10)])


def test_action_windows_score_each_held_out_event_once_with_its_context(spark):
    """The next-action evaluation's windows: under split=time every event in (C, C + H] is scored exactly once,
    no event up to C and none after C + H; under leave-one-out only the last event."""
    # user a: 4 events up to C = 100, 5 in (100, 150], one after; b: nothing after C; c: nothing up to C
    ev = _indexed(spark, [("a", t, 10 + t, 1 + (t % 3), 1) for t in (10, 20, 30, 40, 110, 111, 112, 113, 114, 400)]
                  + [("b", 10, 2, 1, 1), ("c", 120, 2, 1, 1), ("c", 130, 3, 1, 1)])
    rule = WindowRule(max_len=3, stride=2)
    split = sequences.split_sequences(sequences.user_sequences(ev), "time", cutoff_ts=100, horizon_s=50)
    rows = sequences.action_windows(split, rule).collect()
    assert {r.user_id for r in rows} == {"a"}
    scored = [t for r in rows for t in r.ts[r.first_target:]]
    assert sorted(scored) == [110, 111, 112, 113, 114]  # each once
    for r in rows:  # every scored event keeps the left context the window gives it
        assert r.first_target >= 1 and len(r.items) <= rule.span
    # leave-one-out: the test target (the last event) only, after max_len events of context
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")
    rows = {r.user_id: r for r in sequences.action_windows(split, rule).collect()}
    assert set(rows) == {"a", "c"}  # b has one event: no target
    a = rows["a"]
    assert a.ts[a.first_target:] == [400] and a.ts == [112, 113, 114, 400] and a.first_target == 3
    assert rows["c"].ts[rows["c"].first_target:] == [130]


def test_training_windows_count_days_and_buys_before_each_window(spark):
    day = 86400
    # 6 events on days 0, 0, 1, 2, 2, 3; buys (type 5) at the 2nd and 4th; window 0 holds events 2..4
    ev = _indexed(spark, [("u", t, 10 + k, b, 1) for k, (t, b) in enumerate(
        [(0, 1), (60, 5), (day, 1), (2 * day, 5), (2 * day + 60, 1), (3 * day, 1)])])
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")  # 4 training events
    got = sequences.training_windows(split, WindowRule(max_len=2, stride=1), buy_type=5).select(
        "window", "n_before", "days_before", "buys_before")
    assertDataFrameEqual(got, [Row(window=0, n_before=1, days_before=1, buys_before=0),
                               Row(window=1, n_before=0, days_before=0, buys_before=0)])


def test_decay_rows_features(spark):
    day = 86400
    ev = _indexed(spark, [("a", 1 * day, 2, 1, 1), ("a", 1 * day + 5, 3, 5, 1), ("a", 3 * day, 4, 1, 1),
                          ("a", 200 * day, 5, 1, 1), ("b", 50 * day, 6, 5, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "time", cutoff_ts=100 * day,
                                      horizon_s=120 * day)
    rows = {r.user_id: r for r in sequences.decay_rows(split, "test", 2, 100 * day, buy_type=5).collect()}
    a = rows["a"]
    assert (a.items, a.end_ts, a.label, a.history_len, a.n_before, a.first_ts) == ([3, 4], 100 * day, 1, 3, 1, day)
    assert a.recency_days == pytest.approx(97) and a.frequency_90d == 0
    assert (a.bg_x, a.bg_t_x, a.bg_T) == (1, pytest.approx(2), pytest.approx(99))  # active days 1 and 3
    assert a.bought_items == [3]
    assert (a.days_before, a.buys_before) == (1, 0)  # the one event before the last max_len = 2
    b = rows["b"]
    assert (b.label, b.frequency_90d, b.bg_x, b.bought_items) == (0, 1, 0, [6])
    assert set(rows) == {"a", "b"}  # every user with a history, with or without a next event


def test_drift_rows_keep_the_recent_history_and_the_end_of_observation(spark):
    day = 86400
    ev = _indexed(spark, [("a", t * day, 10 + t, 1, 1) for t in range(1, 6)] + [("b", 2 * day, 7, 1, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "time", cutoff_ts=4 * day, horizon_s=day)
    rows = {r.user_id: r for r in sequences.drift_rows(split, "test", 2, 4 * day).collect()}
    a = rows["a"]  # history up to the cutoff: days 1-4, the last 2 kept
    assert (a.items, a.ts, a.end_ts, a.history_len, a.n_before) == ([13, 14], [3 * day, 4 * day], 4 * day, 4, 2)
    assert a.dt == [day, day]  # gaps of the whole history, not restarted at the cut
    assert set(rows) == {"a", "b"}
    loo = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")
    rows = {r.user_id: r for r in sequences.drift_rows(loo, "valid", 10, None).collect()}
    assert rows["a"].items == [11, 12, 13] and rows["a"].end_ts == 3 * day  # up to the valid target: its last event
    assert set(rows) == {"a"}  # b has no valid history


def test_training_windows_cover_history_from_the_end(spark):
    ev = _indexed(spark, [("u", t, 10 + t, 1, 1) for t in range(9)])  # 9 events -> 7 train events
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")
    got = sequences.training_windows(split, WindowRule(max_len=3, stride=3)).select("items", "dt", "window")
    assertDataFrameEqual(got, [Row(items=[13, 14, 15, 16], dt=[1, 1, 1, 1], window=0),
                               Row(items=[10, 11, 12, 13], dt=[0, 1, 1, 1], window=1)])
    with pytest.raises(ValueError, match="stride=4"):
        sequences.training_windows(split, WindowRule(max_len=3, stride=4))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_spark_windows_follow_the_core_rule_and_each_event_is_new_once(spark, stride):
    """The window rule is evaluated by Spark (on Columns) and by the evaluator (on numpy); both agree, and the
    events that `new_events` calls new cover every training event exactly once."""
    import numpy as np

    rule = WindowRule(max_len=3, stride=stride)
    train = {f"u{m}": list(range(100 * m, 100 * m + m)) for m in range(2, 10)}
    split = spark.createDataFrame([(u, [(t, i, 1, 1, 0) for t, i in enumerate(ev)]) for u, ev in train.items()],
                                  "user_id string, train_ev array<struct<ts:long, item_idx:int, event_type_idx:int,"
                                  " category_idx:int, dt:long>>")
    rows = sequences.training_windows(split, rule).select("user_id", "items", "window", "first_target").collect()
    for u, ev in train.items():
        m = len(ev)
        want = {k: ev[rule.start(rule.end(m, k)) - 1:rule.end(m, k)] for k in range(rule.n_windows(m))}
        got = {r.window: r.items for r in rows if r.user_id == u}
        assert got == want, (u, stride)
        new = [x for k, w in got.items() for x in w[:int(rule.new_events(k, len(w)))]]
        assert sorted(new) == ev
        # every target (all events but the first) carries a loss in exactly one window, with the most context
        first = {r.window: r.first_target for r in rows if r.user_id == u}
        scored = sorted(x for k, w in got.items() for x in w[first[k]:])
        assert scored == ev[1:], (u, stride)
        assert all(w.index(x) >= min(rule.max_len - stride + 1, x - ev[0]) for k, w in got.items()
                   for x in w[first[k]:])
    keep = rule.new_events(np.array([r.window for r in rows]), np.array([len(r.items) for r in rows]))
    assert int(keep.sum()) == sum(len(ev) for ev in train.values())


def test_eval_rows_features(spark):
    # history categories: early half [1, 1], recent half [2, 2] -> JS divergence 1; target category 3 -> drifted
    ev = _indexed(spark, [("u", 1, 2, 1, 1), ("u", 2, 3, 1, 1), ("u", 3, 4, 1, 2), ("u", 4, 5, 1, 2),
                          ("u", 5, 9, 2, 3), ("u", 6, 2, 5, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out").cache()
    counts = sequences.item_train_counts(split)
    row = sequences.eval_rows(split, "valid", 3, counts, 30.0).first()
    assert (row.items, row.target_item, row.history_len, row.seen_items) == ([3, 4, 5], 9, 4, [2, 3, 4, 5])
    assert row.drift_score == pytest.approx(1.0)
    assert row.top_categories == [1, 2] and row.target_category == 3
    assert row.target_is_cold_item and row.time_since_last == 1
    test_row = sequences.eval_rows(split, "test", 3, counts, 30.0).first()
    assert test_row.target_item == 2 and not test_row.target_is_cold_item
    # interest weights over the whole history (not only the last max_len events): with the default 30-day
    # half-life seconds barely count (the newer category first, by a hair) ...
    assert row.interest_categories == [2, 1] and row.interest_weights == pytest.approx([0.5, 0.5], abs=1e-6)
    # ... a one-second half-life weighs events 3, 2, 1, 0 s before the last by 1/8, 1/4, 1/2, 1
    row = sequences.eval_rows(split, "valid", 3, counts, tag_half_life_days=1 / 86400).first()
    assert row.interest_categories == [2, 1] and row.interest_weights == pytest.approx([0.8, 0.2])
    test_row = sequences.eval_rows(split, "test", 3, counts, tag_half_life_days=1 / 86400).first()
    assert test_row.interest_categories == [3, 2, 1] and sum(test_row.interest_weights) == pytest.approx(1.0)


def test_item_graph_pairs_within_window_and_gap(spark):
    ev = _indexed(spark, [("u", 0, 2, 1, 1), ("u", 10, 3, 1, 1), ("u", 20, 4, 1, 1), ("u", 10_000, 5, 1, 1),
                          ("u", 10_001, 6, 1, 1), ("u", 10_002, 7, 1, 1)])
    split = sequences.split_sequences(sequences.user_sequences(ev), "leave-one-out")  # trains on items 2..5
    got = graph.item_graph(split, window=2, max_gap_s=100, top_k=1)
    # pairs: (2,3) d=1, (2,4) d=2 w=.5, (3,4) d=1; (4,5) and (3,5) exceed the gap
    assertDataFrameEqual(got, [Row(src=2, dst=3, weight=1.0, rank=1), Row(src=3, dst=2, weight=1.0, rank=1),
                               Row(src=4, dst=3, weight=1.0, rank=1)])
    # top 2 of item 4: 3 (1.0) above 2 (0.5); weights are exact sums of 1/d, kept as lcm-scaled integers
    got = graph.item_graph(split, window=2, max_gap_s=100, top_k=2).where("src = 4")
    assertDataFrameEqual(got, [Row(src=4, dst=3, weight=1.0, rank=1), Row(src=4, dst=2, weight=0.5, rank=2)])


def test_graph_weights_are_exact_across_window_sizes():
    assert [graph.weight_scale(w) for w in (1, 2, 5, 20)] == [1, 2, 60, 232792560]
    with pytest.raises(ValueError, match="at most 20"):
        graph.cooccurrence_pairs(None, 23, 100)
