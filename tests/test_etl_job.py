"""The ETL job on small files of every input format: reconciliation, quarantine, determinism, atomic replace."""
import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest_core.config import load_config
from spark_jobs.etl import QuarantineLimitExceeded, run_etl

REPO = Path(__file__).resolve().parent.parent


def _args(input_path, fmt, output, **kw):
    base = dict(input=str(input_path), format=fmt, output=str(output), items=None, column_map=None, ts_unit="auto",
                sep=None, hmac_key_file=None, allow_insecure_demo_key=True)
    base.update(kw)
    return argparse.Namespace(**base)


def _run(spark, args, *overrides):
    return run_etl(spark, args, load_config("tiny-cpu", ["data.max_quarantine_fraction=0.5", *overrides]))


def hmac_key_of_demo() -> bytes:
    from spark_jobs.pseudonymize import INSECURE_DEMO_KEY

    return INSECURE_DEMO_KEY


def _rows(path):
    return pq.ParquetDataset(str(path)).read().to_pylist()


def _check_reconciles(m):
    c = m["counts"]
    assert c["rows_in"] == c["rows_valid"] + c["rows_quarantined"]
    assert c["rows_valid"] == c["rows_used"] + c["rows_deduplicated"]


def test_taobao_with_bad_rows_is_quarantined_not_dropped(spark, tmp_path):
    lines = [f"{u},{i},{i % 3},{b},{1_700_000_000 + 60 * k}" for k, (u, i, b) in enumerate(
        [(1, 10, "pv"), (1, 11, "cart"), (1, 12, "buy"), (1, 10, "pv"), (2, 10, "fav"), (2, 13, "pv"), (2, 14, "pv")])]
    lines += ["1,10,0,pv,1700000000", "3,15,1,teleport,1700000100", "3,15", "4,16,1,pv,", "5,17,1,pv,9999999999999"]
    f = tmp_path / "UserBehavior.csv"
    f.write_text("\n".join(lines) + "\n")
    m = _run(spark, _args(f, "taobao", tmp_path / "out"))
    _check_reconciles(m)
    assert m["counts"]["rows_in"] == 12 and m["counts"]["rows_deduplicated"] == 1
    assert m["quarantine"]["by_reason"] == {"unknown_event_type": 1, "wrong_column_count": 1, "missing_ts": 1,
                                             "ts_in_future": 1}
    q = _rows(tmp_path / "out" / "quarantine")
    assert sorted(r["raw_sha256"] for r in q) == sorted(hashlib.sha256(x.encode()).hexdigest() for x in lines[-4:])
    # no raw user id: the user field is its pseudonym, the row's text only a hash
    key = hmac_key_of_demo()
    assert sorted(r["user_id"] for r in q) == sorted(hmac.new(key, u.encode(), hashlib.sha256).hexdigest()
                                                     for u in ("3", "3", "4", "5"))
    assert {(r["reason"], r["item_id"], r["event_type"]) for r in q} >= {("unknown_event_type", "15", "teleport")}
    assert all(r["source"].endswith("UserBehavior.csv") and r["position"] is not None for r in q)
    assert (tmp_path / "out" / "_SUCCESS").exists()
    items = _rows(tmp_path / "out" / "items")
    assert {r["category"] for r in items} == {"0", "1", "2"}  # Taobao's category_id became the catalog


def test_every_output_matches_the_core_contract(spark, tmp_path):
    """What Spark writes has exactly the columns and types the core's Arrow schemas declare (readers rely on it)."""
    from interest_core.contract import SHARD_SCHEMAS

    lines = [f"{u},{i},{i % 3},{b},{1_700_000_000 + 60 * k}" for k, (u, i, b) in enumerate(
        [(1, 10, "pv"), (1, 11, "cart"), (1, 12, "buy"), (1, 13, "pv"), (2, 10, "fav"), (2, 13, "pv"), (2, 14, "pv"),
         (2, 11, "pv")])] + ["3,15,1,teleport,1700000100"]
    f = tmp_path / "UserBehavior.csv"
    f.write_text("\n".join(lines) + "\n")
    _run(spark, _args(f, "taobao", tmp_path / "out"))
    for name, schema in SHARD_SCHEMAS.items():
        if not name.startswith("decay_") and name != "planted":  # split=time / synthetic input only: below
            _check_schema(tmp_path / "out" / name, schema)


def _check_schema(path, schema):
    def plain(t):  # list element names and nullability are the writer's business, not the contract's
        return ("list", plain(t.value_type)) if pa.types.is_list(t) else t

    written = pq.ParquetDataset(str(path)).schema
    assert [(f.name, plain(f.type)) for f in written] == [(f.name, plain(f.type)) for f in schema], path.name


def test_quarantine_above_threshold_fails_and_leaves_no_output(spark, tmp_path):
    f = tmp_path / "UserBehavior.csv"
    f.write_text("1,10,0,pv,1700000000\n1,11,0,zz,1700000001\n1,12,0,zz,1700000002\n")
    with pytest.raises(QuarantineLimitExceeded, match=r"66.67% of 3 input rows.*unknown_event_type=2"):
        run_etl(spark, _args(f, "taobao", tmp_path / "out"), load_config("tiny-cpu"))
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_retailrocket_ms_timestamps_and_item_properties(spark, tmp_path):
    (tmp_path / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n1433224214164,257597,addtocart,248676,\n"
        "1433221999827,257597,transaction,355908,4000\n1433222000000,111,view,248676,\n")
    (tmp_path / "item_properties_part1.csv").write_text(
        "timestamp,itemid,property,value\n1435460400000,355908,categoryid,1173\n"
        "1435460500000,355908,categoryid,1174\n1435460400000,248676,available,1\n")
    m = _run(spark, _args(tmp_path / "events.csv", "retailrocket", tmp_path / "out"))
    _check_reconciles(m)
    assert m["counts"]["rows_used"] == 4 and m["counts"]["rows_quarantined"] == 0
    test = _rows(tmp_path / "out" / "test")
    by_len = {r["history_len"]: r for r in test}
    # visitor 257597: view (t1), transaction (t1+667s), addtocart (t1+2882s): ms were read as ms
    assert by_len[2]["ts"][0] == 1433221332 and by_len[2]["target_event_type"] == 3  # cart is the last event
    items = {r["item_id"]: r["category"] for r in _rows(tmp_path / "out" / "items")}
    assert items == {"355908": "1174", "248676": None}


def test_recbole_atomic_files(spark, tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    (d / "ml.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                "1\t10\t5\t978300760\n1\t11\t3\t978302109\n1\t12\t4\t978301968\n2\t10\t4\t978300275\n")
    (d / "ml.item").write_text("item_id:token\tmovie_title:token_seq\tgenre:token_seq\n"
                               "10\tToy Story\tAnimation Comedy\n11\tHeat\tAction\n12\tJumanji\tAdventure\n")
    m = _run(spark, _args(d, "recbole", tmp_path / "out"))
    assert m["counts"]["rows_used"] == 4 and m["vocab"]["event_types"][1] == "view"
    assert m["counts"]["event_types"] == {"view": 4, "click": 0, "cart": 0, "fav": 0, "buy": 0}
    items = {r["item_id"]: (r["category"], r["title"]) for r in _rows(tmp_path / "out" / "items")}
    assert items["10"] == ("Animation", "Toy Story")


@pytest.mark.parametrize("kind", ["recbole", "csv-two-files", "parquet"])
def test_equal_timestamps_keep_the_input_order_so_targets_are_the_inputs_last(spark, tmp_path, kind):
    """User 1's last four events share one timestamp, listed in the input in an order that is neither item-id nor
    popularity order; the valid and test targets are the input's second-to-last and last of them."""
    t = 1_700_000_000
    rows = [("1", "50", t), ("1", "40", t + 9), ("1", "30", t + 9), ("1", "10", t + 9), ("1", "20", t + 9)]
    rows += [(str(u), i, t + u) for u in range(2, 7) for i in ("10", "10", "20", "30", "40")[: u - 1]]
    d = tmp_path / "in"
    d.mkdir()
    if kind == "recbole":
        (d / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                   + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
        args = _args(d, "recbole", tmp_path / "out")
    elif kind == "csv-two-files":  # the tie spans both files: file order (sorted names), then row order
        head = "user,item,time\n"
        (d / "a.csv").write_text(head + "".join(f"{u},{i},{t}\n" for u, i, t in rows[:3]))
        (d / "b.csv").write_text(head + "".join(f"{u},{i},{t}\n" for u, i, t in rows[3:]))
        args = _args(d, "generic", tmp_path / "out", column_map="user_id=user,item_id=item,ts=time")
    else:
        import pyarrow as pa
        pq.write_table(pa.table({"user": [r[0] for r in rows], "item": [r[1] for r in rows],
                                 "time": [r[2] for r in rows]}), d / "x.parquet")
        args = _args(d, "generic", tmp_path / "out", column_map="user_id=user,item_id=item,ts=time")
    _run(spark, args)
    ids = {r["item_idx"]: r["item_id"] for r in _rows(tmp_path / "out" / "vocab" / "items")}
    valid = [r for r in _rows(tmp_path / "out" / "valid") if r["history_len"] == 3]
    test = [r for r in _rows(tmp_path / "out" / "test") if r["history_len"] == 4]
    assert len(valid) == len(test) == 1
    assert [ids[i] for i in valid[0]["items"]] == ["50", "40", "30"] and ids[valid[0]["target_item"]] == "10"
    assert ids[test[0]["target_item"]] == "20"


def test_real_movielens_100k_from_the_recbole_wheel(spark, tmp_path):
    """The public ML-100K files (fetched by `make test` through bench/public_data.py) go through unchanged."""
    sys.path.insert(0, str(REPO / "bench"))
    from public_data import ml100k

    d = ml100k()
    m = _run(spark, _args(d / "ml-100k.inter", "recbole", tmp_path / "out", items=str(d / "ml-100k.item")),
             "data.max_quarantine_fraction=0.0")
    c = m["counts"]
    assert (c["rows_in"], c["rows_quarantined"], c["rows_deduplicated"], c["users"]) == (100_000, 0, 0, 943)
    assert m["vocab"]["items_in_vocab"] == 1682 and m["rows"]["valid"] == m["rows"]["test"] == 943
    assert m["vocab"]["num_categories"] == 19 + 1  # first genre of each movie: 19 distinct, plus padding
    items = {r["item_id"]: (r["category"], r["title"]) for r in _rows(tmp_path / "out" / "items")}
    assert items["1"] == ("Animation", "Toy Story")


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_generic_formats_with_column_map(spark, tmp_path, kind):
    rows = [("a", "x", "2024-01-01T00:00:00Z", "purchase"), ("a", "y", "2024-01-01T00:05:00Z", "view"),
            ("a", "z", "2024-01-01T00:09:00Z", "view"), ("b", "x", "2024-01-02T10:00:00", "view"),
            ("b", "y", "2024-01-02T10:01:00", "view")]
    path = tmp_path / f"log.{kind}"
    if kind == "csv":
        path.write_text("visitor,sku,time,action\n" + "\n".join(",".join(r) for r in rows) + "\n")
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(["visitor", "sku", "time", "action"], r))) for r in rows)
                        + "\n{not json\n")
    else:
        import pyarrow as pa
        pq.write_table(pa.table({k: [r[i] for r in rows] for i, k in enumerate(["visitor", "sku", "time", "action"])}),
                       path)
    m = _run(spark, _args(path, "generic", tmp_path / "out",
                          column_map="user_id=visitor,item_id=sku,ts=time,event_type=action"))
    _check_reconciles(m)
    assert m["counts"]["rows_used"] == 5
    assert m["counts"]["rows_quarantined"] == (1 if kind == "jsonl" else 0)
    test = {r["history_len"]: r for r in _rows(tmp_path / "out" / "test")}
    assert test[2]["ts"][0] == 1704067200 and test[2]["event_types"][0] == 5  # purchase -> buy (id 5)


def test_generic_missing_column_names_the_fix(spark, tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("visitor,sku,time\na,x,1700000000\n")
    with pytest.raises(ValueError, match=r"no column for 'user_id'; pass --map user_id="):
        _run(spark, _args(f, "generic", tmp_path / "out"))


def test_rerun_is_identical_and_replaces_atomically(spark, tmp_path):
    from interest.synthetic import generate

    generate(tmp_path / "synth", users=200, items=100, days=20, events=4000, seed=2)
    first = _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    snapshot = {s: sorted(map(json.dumps, _rows(tmp_path / "out" / s))) for s in ("train", "valid", "test", "items",
                                                                                   "graph")}
    (tmp_path / "out" / "stale-file.parquet").write_text("old")
    second = _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    assert not (tmp_path / "out" / "stale-file.parquet").exists()
    for s, rows in snapshot.items():
        assert sorted(map(json.dumps, _rows(tmp_path / "out" / s))) == rows, s
    assert first["rows"] == second["rows"] and first["vocab"] == second["vocab"]
    files = sorted(p.name for p in (tmp_path / "out" / "train").glob("*.parquet"))
    assert len(files) == load_config("tiny-cpu").data.num_files
    raw_users = {r["user_id"] for r in pq.read_table(tmp_path / "synth" / "events").to_pylist()}
    assert not raw_users & {r["user_id"] for r in _rows(tmp_path / "out" / "test")}
    # The planted interests come along pseudonymized like the events, one row per generated user.
    from interest_core.contract import PLANTED_SCHEMA
    _check_schema(tmp_path / "out" / "planted", PLANTED_SCHEMA)
    planted = _rows(tmp_path / "out" / "planted")
    truth = pq.read_table(tmp_path / "synth" / "ground_truth.parquet").to_pylist()
    assert len(planted) == len(truth) and not raw_users & {r["user_id"] for r in planted}
    assert {r["user_id"] for r in _rows(tmp_path / "out" / "test")} <= {r["user_id"] for r in planted}
    now = sorted(map(sorted, (t["interests_after"] if t["migrated"] else t["interests"] for t in truth)))
    assert sorted(sorted(r["interests"]) for r in planted) == now
    assert sum(r["interests_before"] is not None for r in planted) == sum(t["migrated"] for t in truth) > 0


@pytest.mark.slow
def test_spark_submit_runs_the_job_file(tmp_path):
    from interest.synthetic import generate

    generate(tmp_path / "synth", users=100, items=50, days=10, events=1500, seed=4)
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123456789abcdef")
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run([str(spark_submit), "--master", "local[2]", str(REPO / "spark_jobs" / "etl.py"),
                           "--input", str(tmp_path / "synth"), "--format", "synthetic", "--output",
                           str(tmp_path / "out"), "--config", "tiny-cpu", "--hmac-key-file", str(key)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["pseudonymization"]["key_source"] == "file" and "0123456789abcdef" not in json.dumps(m)
    assert "0123456789abcdef" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_cli_time_split_with_a_date_cutoff_writes_decay_rows(tmp_path):
    """`interest etl --split time --cutoff 2024-03-31 --horizon-days 30`, as a user types it; then a cutoff whose
    label window runs past the data is refused with the latest usable cutoff."""
    from interest.synthetic import generate
    from interest_core.contract import DECAY_SCHEMA

    generate(tmp_path / "synth", users=150, items=60, days=130, events=3000, seed=5, start="2024-01-01")
    interest = Path(sys.executable).parent / "interest"
    cmd = [str(interest), "etl", "--input", str(tmp_path / "synth"), "--format", "synthetic", "--output",
           str(tmp_path / "out"), "--config", "tiny-cpu", "--allow-insecure-demo-key", "--split", "time",
           "--horizon-days", "30"]
    proc = subprocess.run(cmd + ["--cutoff", "2024-03-31"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    cutoff = 1711843200  # 2024-03-31T00:00:00Z
    assert (m["split"]["cutoff_ts"], m["split"]["valid_cutoff_ts"]) == (cutoff, cutoff - 30 * 86400)
    for name, end in (("decay_valid", cutoff - 30 * 86400), ("decay_test", cutoff)):
        _check_schema(tmp_path / "out" / name, DECAY_SCHEMA)
        rows = _rows(tmp_path / "out" / name)
        assert len(rows) == m["rows"][name] > 0
        assert {r["end_ts"] for r in rows} == {end} and {r["label"] for r in rows} == {0, 1}
        assert all(max(r["ts"]) <= end for r in rows)
    train = _rows(tmp_path / "out" / "train")
    assert all(max(r["ts"]) <= cutoff - 30 * 86400 for r in train)
    markers = [r for r in train if r["items"][-1] == 0]  # each user's newest window ends with the marker
    assert len(markers) == len({r["user_id"] for r in train}) and {r["ts"][-1] for r in markers} == {
        cutoff - 30 * 86400}
    late = subprocess.run(cmd + ["--cutoff", "2024-05-01"], capture_output=True, text=True, timeout=600)
    assert late.returncode != 0 and "plus the horizon (30 days) is after the last event" in late.stderr


def test_cli_cold_items_holds_items_out_of_training_only(spark, tmp_path):
    """`interest etl ... --cold-items 0.2` parsed by the CLI's own parser: a fifth of the items lose every training
    event (train_count 0, no training window, no graph edge) and keep their test targets."""
    from interest.cli import build_parser
    from interest.synthetic import generate
    from spark_jobs.etl import config_from_args

    generate(tmp_path / "synth", users=120, items=80, days=40, events=2500, seed=3)
    args = build_parser("etl").parse_args(
        ["etl", "--input", str(tmp_path / "synth"), "--format", "synthetic", "--output", str(tmp_path / "out"),
         "--config", "tiny-cpu", "--allow-insecure-demo-key", "--cold-items", "0.2"])
    cfg = config_from_args(args)
    assert cfg.data.cold_items == 0.2
    m = run_etl(spark, args, cfg)
    held = m["split"]["cold_items"]
    items = _rows(tmp_path / "out" / "items")
    never_trained = {r["item_idx"] for r in items if r["train_count"] == 0}
    assert held["fraction"] == 0.2 and 0.1 * len(items) <= held["items_held_out"] <= 0.3 * len(items)
    assert len(never_trained) >= held["items_held_out"]
    train_items = {i for r in _rows(tmp_path / "out" / "train") for i in r["items"]}
    assert not train_items & never_trained
    graph_items = {r["src"] for r in _rows(tmp_path / "out" / "graph")} | {r["dst"] for r in _rows(
        tmp_path / "out" / "graph")}
    assert not graph_items & never_trained
    test = _rows(tmp_path / "out" / "test")
    cold_targets = [r for r in test if r["target_is_cold_item"]]
    assert cold_targets and all(r["target_item"] in never_trained for r in cold_targets)
    with pytest.raises(SystemExit):
        build_parser("etl").parse_args(["etl", "--input", "x", "--format", "synthetic", "--output", "y",
                                        "--cold-items", "some"])
    with pytest.raises(ValueError, match="cold_items"):
        load_config("tiny-cpu", ["data.cold_items=1.5"])
