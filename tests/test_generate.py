"""Tests of the synthetic generator: determinism, exact schemas, and recovery of the planted rates."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest.synthetic import Rates, add_arguments, generate, run

SMALL = {"users": 300, "items": 200, "days": 30, "events": 6_000, "chunk_users": 120}
PLANTED = {"users": 3_000, "items": 1_000, "days": 60, "events": 60_000, "seed": 1}
TS = pa.timestamp("ms", tz="UTC")  # whole seconds; Parquet has no seconds unit


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    summary = generate(out, **PLANTED)
    parts = sorted((out / "events").glob("part-*.parquet"))
    events = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return SimpleNamespace(out=out, summary=summary, parts=parts, events=events,
                           items=pd.read_parquet(out / "items.parquet"),
                           truth=pd.read_parquet(out / "ground_truth.parquet"))


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    generate(tmp_path / "a", seed=7, **SMALL)
    generate(tmp_path / "b", seed=7, **SMALL)
    generate(tmp_path / "c", seed=8, **SMALL)
    a, b, c = (_file_bytes(tmp_path / x) for x in "abc")
    assert len([name for name in a if name.startswith("events/")]) == 3  # 300 users in chunks of 120
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)


def test_rerun_into_same_directory_replaces_stale_parts(tmp_path):
    generate(tmp_path, seed=7, **SMALL)
    generate(tmp_path, seed=7, **{**SMALL, "chunk_users": 300})
    assert [p.name for p in (tmp_path / "events").iterdir()] == ["part-00000.parquet"]


def test_schemas_are_exact(planted):
    events = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("event_type", pa.string()),
                        ("ts", TS), ("session_id", pa.string()), ("quantity", pa.int32()), ("price", pa.float64())])
    items = pa.schema([("item_id", pa.string()), ("category", pa.string()), ("brand", pa.string()),
                       ("price", pa.float64()), ("title", pa.string()), ("first_ts", TS)])
    truth = pa.schema([("user_id", pa.string()), ("interests", pa.list_(pa.string())), ("migrated", pa.bool_()),
                       ("migration_ts", TS), ("interests_after", pa.list_(pa.string())), ("churned", pa.bool_()),
                       ("churn_ts", TS), ("is_cold", pa.bool_()), ("n_events", pa.int64())])
    for part in planted.parts:
        assert pq.read_schema(part).equals(events)
    assert pq.read_schema(planted.out / "items.parquet").equals(items)
    assert pq.read_schema(planted.out / "ground_truth.parquet").equals(truth)
    assert set(planted.events.event_type) == {"view", "cart", "fav", "buy"}
    for ts in (planted.events.ts, planted.items.first_ts, planted.truth.migration_ts.dropna()):
        assert (ts.dt.floor("s") == ts).all()
    assert planted.items.category.str.fullmatch(r"Cat\d+/Sub\d+").all()
    assert planted.events.user_id.str.fullmatch(r"u\d{6}").all() and planted.items.item_id.str.fullmatch(r"i\d{5}").all()


def test_sizes_counts_and_summary(planted):
    ev, truth, summary = planted.events, planted.truth, planted.summary
    assert abs(len(ev) / PLANTED["events"] - 1) <= 0.15
    assert len(truth) == PLANTED["users"] and truth.user_id.is_unique
    assert len(planted.items) == PLANTED["items"] and planted.items.item_id.is_unique
    per_user = ev.groupby("user_id").size()
    assert set(per_user.index) == set(truth.user_id)  # every user has at least one event
    assert (truth.set_index("user_id").n_events == per_user).all()
    assert summary["counts"]["events"] == len(ev)
    assert summary["counts"]["events_by_type"] == ev.event_type.value_counts().to_dict()
    assert json.loads((planted.out / "generator.json").read_text()) == summary
    assert summary["rates"]["p_cart"] == Rates().p_cart and summary["params"]["seed"] == PLANTED["seed"]


def test_rows_sorted_by_user_then_time_in_every_file(planted):
    for part in planted.parts:
        df = pd.read_parquet(part, columns=["user_id", "ts"])
        same_user = df.user_id.values[1:] == df.user_id.values[:-1]
        assert (df.user_id.values[1:] >= df.user_id.values[:-1]).all()
        assert (df.ts.values[1:][same_user] >= df.ts.values[:-1][same_user]).all()


def test_events_inside_window_and_funnel_shape(planted):
    ev = planted.events
    start = pd.Timestamp("2024-01-01", tz="UTC")
    assert ev.ts.min() >= start and ev.ts.max() < start + pd.Timedelta(days=PLANTED["days"])
    assert (ev.quantity[ev.event_type != "buy"] == 1).all() and (ev.quantity[ev.event_type == "buy"] >= 1).all()
    assert (ev.price == ev.item_id.map(planted.items.set_index("item_id").price)).all()
    # Every buy follows a cart of the same item in the same session, no later than the buy.
    carts = ev[ev.event_type == "cart"].groupby(["session_id", "item_id"]).ts.min().rename("cart_ts")
    buys = ev[ev.event_type == "buy"].join(carts, on=["session_id", "item_id"])
    assert buys.cart_ts.notna().all() and (buys.cart_ts <= buys.ts).all()
    # Sessions last minutes, not hours.
    span = ev.groupby("session_id").ts.agg(lambda t: t.max() - t.min())
    assert span.max() < pd.Timedelta(hours=2)


def test_funnel_rates_recovered(planted):
    counts = planted.events.event_type.value_counts()
    r = Rates()
    assert counts["cart"] / counts["view"] == pytest.approx(r.p_cart, rel=0.3)
    assert counts["buy"] / counts["cart"] == pytest.approx(r.p_buy, rel=0.3)
    assert counts["fav"] / counts["view"] == pytest.approx(r.p_fav, rel=0.3)


def test_cold_users(planted):
    truth = planted.truth
    assert truth.is_cold.mean() == pytest.approx(Rates().cold_user_fraction, abs=0.03)
    assert ((truth.n_events <= 3) == truth.is_cold).all()


def test_cold_items_only_after_first_ts_and_seen(planted):
    items, ev = planted.items, planted.events
    window_end = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=PLANTED["days"])
    cold = items[items.first_ts >= window_end - pd.Timedelta(days=Rates().cold_item_days)]
    assert len(cold) == round(Rates().cold_item_fraction * PLANTED["items"])
    joined = ev.join(items.set_index("item_id").first_ts, on="item_id")
    assert (joined.ts >= joined.first_ts).all()
    assert ev.item_id.isin(cold.item_id).groupby(ev.item_id).any().sum() >= len(cold) // 2


def test_migration_fraction_and_new_interests(planted):
    truth, ev, items = planted.truth, planted.events, planted.items
    warm = truth[~truth.is_cold]
    assert warm.migrated.mean() == pytest.approx(Rates().migration_fraction, abs=0.05)
    assert truth.migrated.mean() == pytest.approx(Rates().migration_fraction, abs=0.05)
    assert (truth.migration_ts.notna() == truth.migrated).all()
    assert (truth.interests_after.notna() == truth.migrated).all()
    migrated = truth[truth.migrated]
    assert all(not set(a) & set(b) for a, b in zip(migrated.interests, migrated.interests_after))

    ev = ev.assign(category=ev.item_id.map(items.set_index("item_id").category))
    after = ev.merge(migrated[["user_id", "migration_ts", "interests_after"]], on="user_id")
    after = after[after.ts >= after.migration_ts]
    in_new = [c in set(new) for c, new in zip(after.category, after.interests_after)]
    assert np.mean(in_new) >= 0.7

    stayed = ev.merge(truth.loc[~truth.migrated, ["user_id", "interests"]], on="user_id")
    assert np.mean([c in set(old) for c, old in zip(stayed.category, stayed.interests)]) >= 0.7


def test_churn_truth_is_consistent(planted):
    truth = planted.truth.set_index("user_id")
    last = planted.events.groupby("user_id").ts.max()
    assert (truth.churn_ts.notna() == truth.churned).all()
    assert (truth.churn_ts[truth.churned] == last[truth.churned]).all()
    assert truth.churned[truth.is_cold].all()  # a cold user's only session ends their activity
    assert 0.1 < truth.churned.mean() < 0.9  # both churn and censoring occur


def test_sessions_prefer_evening_over_night(planted):
    hours = planted.events.groupby("session_id").ts.min().dt.hour
    evening, night = hours.between(18, 21).sum(), hours.between(1, 4).sum()
    assert evening > 3 * night


def test_next_item_signal_beats_global_popularity(planted):
    views = planted.events[planted.events.event_type == "view"][["user_id", "item_id"]]
    views = views.assign(prev=views.groupby("user_id").item_id.shift()).dropna()
    is_train = views.user_id.str[1:].astype(int) % 2 == 0
    train, test = views[is_train], views[~is_train]
    popular = set(train.item_id.value_counts().index[:10])
    popularity_hr = test.item_id.isin(popular).mean()
    follows = train.groupby(["prev", "item_id"]).size().rename("n").reset_index()
    top = follows.sort_values(["prev", "n"], ascending=[True, False]).groupby("prev").head(10)
    sequential_hr = test.merge(top, on=["prev", "item_id"], how="left").n.notna().mean()
    assert sequential_hr > 0.2 and sequential_hr > 2 * popularity_hr


def test_cli_arguments_and_run(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for action in parser._actions[1:]:
        assert "e.g." in action.help
    args = parser.parse_args(["--out", str(tmp_path), "--users", "50", "--items", "40", "--events", "800",
                              "--days", "10", "--seed", "3"])
    assert run(args) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "events" in line and "50 users" in line
    assert json.loads((tmp_path / "generator.json").read_text())["params"]["users"] == 50


@pytest.mark.parametrize("bad", [{"users": 0}, {"items": 5}, {"days": 0}, {"events": 10, "users": 20},
                                 {"start": "yesterday"}])
def test_invalid_arguments_say_how_to_fix(tmp_path, bad):
    with pytest.raises(ValueError, match="e.g.|at least|must"):
        generate(tmp_path, **{**SMALL, **bad})


def test_unreachable_event_target_warns(tmp_path):
    # Warm users have at least 4 events, so 1.2 events per user cannot be met.
    with pytest.warns(UserWarning, match="closest this generator gets"):
        summary = generate(tmp_path, users=500, items=100, events=600)
    assert summary["counts"]["events"] > 600
