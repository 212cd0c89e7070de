"""The ETL job on small files of every input format: reconciliation, quarantine, determinism, atomic replace."""
import argparse
import datetime as dt
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
from interest_core.data_versions import add_reference, current_version, resolve_data_dir, versions
from spark_jobs.etl import QuarantineLimitExceeded, run_etl
from helpers import chatter, cli_on_the_session_spark

REPO = Path(__file__).resolve().parent.parent


def _out(tmp_path):
    """The current version of tmp_path/out (the ETL publishes versions behind a pointer)."""
    return resolve_data_dir(tmp_path / "out")


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


def _files(path):
    """{part number: the file's rows as JSON, in file order}."""
    return {f.name.split("-")[1]: [json.dumps(r, sort_keys=True) for r in pq.read_table(f).to_pylist()]
            for f in sorted(path.glob("*.parquet"))}


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
    q = _rows(_out(tmp_path) / "quarantine")
    assert sorted(r["raw_sha256"] for r in q) == sorted(hashlib.sha256(x.encode()).hexdigest() for x in lines[-4:])
    # no raw user id: the user field is its pseudonym, the row's text only a hash
    key = hmac_key_of_demo()
    assert sorted(r["user_id"] for r in q if r["user_id"]) == sorted(
        hmac.new(key, u.encode(), hashlib.sha256).hexdigest() for u in ("3", "4", "5"))
    assert [r["user_id"] for r in q if r["reason"].startswith("wrong_column_count")] == [None]  # keeps no field
    assert {(r["reason"], r["item_id"], r["event_type"]) for r in q} >= {("unknown_event_type", "15", "teleport")}
    assert all(r["source"].endswith("UserBehavior.csv") and r["position"] is not None for r in q)
    assert (_out(tmp_path) / "_SUCCESS").exists()
    items = _rows(_out(tmp_path) / "items")
    # Taobao's category_id became the catalog; items 12-14 occur only as valid/test targets: no training event and no
    # catalog content of their own (the categories come from the events), so they are out of vocabulary
    assert {r["item_id"]: r["category"] for r in items} == {"10": "1", "11": "2"}


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
            _check_schema(_out(tmp_path) / name, schema)


def _check_schema(path, schema):
    def plain(t):  # list element names and nullability are the writer's business, not the contract's
        return ("list", plain(t.value_type)) if pa.types.is_list(t) else t

    written = pq.ParquetDataset(str(path)).schema
    assert [(f.name, plain(f.type)) for f in written] == [(f.name, plain(f.type)) for f in schema], path.name


def test_quarantine_above_threshold_fails_and_keeps_the_evidence(spark, tmp_path):
    f = tmp_path / "UserBehavior.csv"
    f.write_text("1,10,0,pv,1700000000\n1,11,0,zz,1700000001\n1,12,0,zz,1700000002\n")
    with pytest.raises(QuarantineLimitExceeded, match=r"66.67% of 3 input rows.*unknown_event_type=2.*"
                                                      r"quarantined rows are in .*quarantine"):
        run_etl(spark, _args(f, "taobao", tmp_path / "out"), load_config("tiny-cpu"))
    assert current_version(tmp_path / "out") is None  # nothing published
    (failed,) = versions(tmp_path / "out")
    assert "above the threshold" in json.loads((failed / "_FAILED.json").read_text())["reason"]
    assert sorted(r["reason"] for r in _rows(failed / "quarantine")) == ["unknown_event_type"] * 2


def test_rerun_is_identical_and_publishes_a_new_version(spark, tmp_path):
    from interest.synthetic import generate

    generate(tmp_path / "synth", users=200, items=100, days=20, events=4000, seed=2)
    first = _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    v1 = _out(tmp_path)
    per_user = ("train", "valid", "test", "action_test", "drift_valid", "drift_test")
    snapshot = {s: _files(v1 / s) for s in per_user + ("items", "graph")}
    for s in per_user:  # every file in user order, windows in order inside a user
        for rows in snapshot[s].values():
            keys = [(json.loads(r)["user_id"], json.loads(r).get("window", 0)) for r in rows]
            assert keys == sorted(keys) and len(set(keys)) == len(keys), s
    second = _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    v2 = _out(tmp_path)
    assert v2 != v1 and not v1.exists()  # no run used the first version: the second run's publish deleted it
    for s, files in snapshot.items():  # the same rows in the same files in the same order
        assert _files(v2 / s) == files, s
    assert first["rows"] == second["rows"] and first["vocab"] == second["vocab"]
    files = sorted(p.name for p in (v2 / "train").glob("*.parquet"))
    assert len(files) == load_config("tiny-cpu").data.num_files
    raw_users = {r["user_id"] for r in pq.read_table(tmp_path / "synth" / "events").to_pylist()}
    assert not raw_users & {r["user_id"] for r in _rows(_out(tmp_path) / "test")}
    # The planted interests come along pseudonymized like the events, one row per generated user.
    from interest_core.contract import PLANTED_SCHEMA
    _check_schema(_out(tmp_path) / "planted", PLANTED_SCHEMA)
    planted = _rows(_out(tmp_path) / "planted")
    truth = pq.read_table(tmp_path / "synth" / "ground_truth.parquet").to_pylist()
    assert len(planted) == len(truth) and not raw_users & {r["user_id"] for r in planted}
    assert {r["user_id"] for r in _rows(_out(tmp_path) / "test")} <= {r["user_id"] for r in planted}
    now = sorted(map(sorted, (t["interests_after"] if t["migrated"] else t["interests"] for t in truth)))
    assert sorted(sorted(r["interests"]) for r in planted) == now
    assert sum(r["interests_before"] is not None for r in planted) == sum(t["migrated"] for t in truth) > 0


@pytest.mark.slow
def test_cli_time_split_with_a_date_cutoff_writes_decay_rows(spark, tmp_path, monkeypatch, capsys):
    """`interest pipeline --until etl --etl-args '--split time --cutoff 2024-03-31 --horizon-days 30'` (the pipeline's
    ETL on local Spark, the flags as a user types them); then `interest etl` with a cutoff whose label window runs
    past the data is refused with the latest usable cutoff (exit 2, the reason on stderr)."""
    from interest.synthetic import generate
    from interest_core.contract import DECAY_SCHEMA

    generate(tmp_path / "synth", users=150, items=60, days=130, events=3000, seed=5, start="2024-01-01")
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123456789abcdef")
    code = cli_on_the_session_spark(monkeypatch, spark, [
        "pipeline", "--config", "tiny-cpu", "--input", str(tmp_path / "synth"), "--format", "synthetic", "--out",
        str(tmp_path / "p"), "--hmac-key-file", str(key), "--until", "etl", "--etl-args",
        "--split time --cutoff 2024-03-31 --horizon-days 30"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert list(json.loads((tmp_path / "p" / "pipeline.json").read_text())["stages"]) == ["etl"]
    (tmp_path / "p" / "data").rename(tmp_path / "out")  # where _out() looks
    m = json.loads((_out(tmp_path) / "manifest.json").read_text())
    cutoff = 1711843200  # 2024-03-31T00:00:00Z
    assert (m["split"]["cutoff_ts"], m["split"]["valid_cutoff_ts"]) == (cutoff, cutoff - 30 * 86400)
    for name, end in (("decay_valid", cutoff - 30 * 86400), ("decay_test", cutoff)):
        _check_schema(_out(tmp_path) / name, DECAY_SCHEMA)
        rows = _rows(_out(tmp_path) / name)
        assert len(rows) == m["rows"][name] > 0
        assert {r["end_ts"] for r in rows} == {end} and {r["label"] for r in rows} == {0, 1}
        assert all(max(r["ts"]) <= end for r in rows)
    train = _rows(_out(tmp_path) / "train")
    assert all(max(r["ts"]) <= cutoff - 30 * 86400 for r in train)
    markers = [r for r in train if r["items"][-1] == 0]  # each user's newest window ends with the marker
    assert len(markers) == len({r["user_id"] for r in train}) and {r["ts"][-1] for r in markers} == {
        cutoff - 30 * 86400}
    capsys.readouterr()
    cmd = ["etl", "--input", str(tmp_path / "synth"), "--format", "synthetic", "--output", str(tmp_path / "out"),
           "--config", "tiny-cpu", "--allow-insecure-demo-key", "--split", "time", "--horizon-days", "30"]
    late = cli_on_the_session_spark(monkeypatch, spark, cmd + ["--cutoff", "2024-05-01"])
    err = capsys.readouterr().err
    assert late == 2 and "plus the horizon (30 days) is after the last event" in err, err[-2000:]


@pytest.fixture(scope="module")
def shifting_mix(spark, tmp_path_factory):
    """split=time on data whose type mix changes after the training period (views and carts before cutoff - horizon,
    buys after) and with two items that occur only after it, one listed with a title; --cold-items 0.3. Returns
    (manifest, output dir, the CSV's rows, V)."""
    tmp = tmp_path_factory.mktemp("shifting_mix")
    day, v = 86400, 1_700_000_000 + 20 * 86400  # V = cutoff - horizon; cutoff = V + 10 days
    lines = ["user,item,type,time"]
    for u in range(12):
        lines += [f"u{u},r{(2 * u + k) % 20},view,{v - (8 - k) * day}" for k in range(5)]
        lines += [f"u{u},r{u},cart,{v - 2 * day}", f"u{u},r{(u + 7) % 20},buy,{v + 3 * day}",
                  f"u{u},late,buy,{v + 12 * day}", f"u{u},late_titled,buy,{v + 21 * day}"]
    (tmp / "events.csv").write_text("\n".join(lines) + "\n")
    (tmp / "items.csv").write_text("item_id,title\n" + "".join(f"r{i},Item {i}\n" for i in range(20))
                                   + "late_titled,A title\n")
    cutoff = dt.datetime.fromtimestamp(v + 10 * day, dt.timezone.utc).isoformat()
    args = _args(tmp / "events.csv", "generic", tmp / "out", items=str(tmp / "items.csv"),
                 column_map="user_id=user,item_id=item,event_type=type,ts=time")
    m = _run(spark, args, "data.split=time", f"data.cutoff={cutoff}", "data.horizon_days=10", "data.cold_items=0.3")
    return m, _out(tmp), [ln.split(",") for ln in lines[1:]], v


def _held_out(spark, ids):
    from pyspark.sql import functions as F

    from spark_jobs.sequences import held_out_item

    return {r.i for r in spark.createDataFrame([(i,) for i in ids], "i string").select(
        "i", held_out_item(F.col("i"), 0.3).alias("h")).collect() if r.h}


def test_next_action_prior_is_the_training_events_mix(spark, shifting_mix):
    """The prior of the next-action head and of its frequency baseline: the training events' types only, never the
    buys of the valid and test periods that action_test scores (the held-out items' events do not train)."""
    from interest_core.modelargs import event_type_prior

    m, out, rows, v = shifting_mix
    trains = {r["item_id"] for r in _rows(out / "items") if r["train_count"] > 0}  # not held out
    trained = [r for r in rows if int(r[3]) <= v and r[1] in trains]
    types = ("view", "click", "cart", "fav", "buy")
    want = {t: sum(1 for r in trained if r[2] == t) for t in types}
    assert want["buy"] == 0 < m["counts"]["event_types"]["buy"]
    total = sum(want.values())
    assert event_type_prior(m) == [0.0] + [want[t] / total for t in types]
    assert m["counts"]["event_types_train"] == want


def test_item_vocabulary_reads_training_counts_only(spark, shifting_mix):
    """An item without a training event and without catalog content is out of vocabulary (its test targets are
    unrankable, whatever their test-period count); one with a title keeps an id; the cold-item holdout is a hash of
    the item's id (its events leave training), whatever index the item gets."""
    m, out, _, _ = shifting_mix
    items = {r["item_id"]: r for r in _rows(out / "items")}
    assert "late" not in items and "late_titled" in items
    assert {r["target_item"] for r in _rows(out / "test")} == {1}  # every test target is `late`: OOV
    held = _held_out(spark, items)
    assert 0 < len(held) == m["split"]["cold_items"]["items_held_out"]
    assert {i for i, r in items.items() if r["train_count"] == 0} == held | {"late_titled"}


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
    items = _rows(_out(tmp_path) / "items")
    never_trained = {r["item_idx"] for r in items if r["train_count"] == 0}
    assert held["fraction"] == 0.2 and 0.1 * len(items) <= held["items_held_out"] <= 0.3 * len(items)
    assert len(never_trained) >= held["items_held_out"]
    train_items = {i for r in _rows(_out(tmp_path) / "train") for i in r["items"]}
    assert not train_items & never_trained
    graph_items = {r["src"] for r in _rows(_out(tmp_path) / "graph")} | {r["dst"] for r in _rows(
        _out(tmp_path) / "graph")}
    assert not graph_items & never_trained
    test = _rows(_out(tmp_path) / "test")
    cold_targets = [r for r in test if r["target_is_cold_item"]]
    assert cold_targets and all(r["target_item"] in never_trained for r in cold_targets)
    with pytest.raises(SystemExit):
        build_parser("etl").parse_args(["etl", "--input", "x", "--format", "synthetic", "--output", "y",
                                        "--cold-items", "some"])
    with pytest.raises(ValueError, match="cold_items"):
        load_config("tiny-cpu", ["data.cold_items=1.5"])


# The publish step of an ETL's version in a process of its own, killed between its two steps (the writer's marker
# removed, the pointer not yet replaced): argv = OUT VERSION.
KILL_AT_PUBLISH = """
import os, signal, sys
import spark_jobs.publish as publish
publish.point_to = lambda out, version: os.kill(os.getpid(), signal.SIGKILL)  # die between the two steps
publish.publish(sys.argv[1], sys.argv[2])
"""


def test_a_killed_etl_leaves_the_previous_version_readable_and_a_run_keeps_its_version(spark, tmp_path, monkeypatch,
                                                                                     capsys):
    """SIGKILL between writing a version and replacing the pointer: readers keep the previous complete version;
    the next ETL removes the killed one's leftovers, and a version a run trains on survives later ETLs. The second
    ETL writes its version whole on the session's Spark; its publish step runs in a process that a real SIGKILL
    ends where the ETL would die (the JVM start of `interest etl` as a process of its own is the out-of-memory
    test's)."""
    from interest.synthetic import generate
    from interest_core.contract import load_manifest
    from spark_jobs import publish

    generate(tmp_path / "synth", users=120, items=60, days=20, events=2000, seed=4)
    _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    v1 = _out(tmp_path)
    (tmp_path / "run1").mkdir()
    add_reference(v1, tmp_path / "run1")  # what `interest train --data out --output run1` records
    written = []
    with monkeypatch.context() as mp:
        mp.setattr(publish, "publish", lambda out, version: written.append(version) or [])
        _run(spark, _args(tmp_path / "synth", "synthetic", tmp_path / "out"))
    (version,) = written
    assert (version / "_SUCCESS").exists() and (version / publish.WRITER).exists()  # whole, before its publish
    got = subprocess.run([sys.executable, "-c", KILL_AT_PUBLISH, str(tmp_path / "out"), str(version)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == -9, got.stderr[-2000:]
    assert _out(tmp_path) == v1 and load_manifest(v1)["rows"]["train"] > 0  # the previous version is current
    killed = [v for v in versions(tmp_path / "out") if v != v1]
    assert killed == [version] and (version / "_SUCCESS").exists()  # written whole, never published
    # the next run: the killed version and the temporary directory go (reported); run1's version stays
    (tmp_path / ".out.tmp-0badc0de").mkdir()  # what a killed ETL of the unversioned layout left
    capsys.readouterr()
    code = cli_on_the_session_spark(monkeypatch, spark, [
        "etl", "--input", str(tmp_path / "synth"), "--format", "synthetic", "--output", str(tmp_path / "out"),
        "--config", "tiny-cpu", "--allow-insecure-demo-key"])
    got = capsys.readouterr()
    assert code == 0, got.err[-2000:]
    assert not version.exists() and not (tmp_path / ".out.tmp-0badc0de").exists()
    assert "a temporary directory a killed ETL left" in got.out
    assert f"kept {v1.name}: runs still use it" in got.out and v1.exists() and _out(tmp_path) != v1
    # once the run directory is gone, the next ETL's publish deletes its version (spark_jobs.publish.prune)
    (tmp_path / "run1").rmdir()
    assert publish.prune(tmp_path / "out") == [f"removed {v1.name}: not current and no run uses it"]
    assert not v1.exists() and len(versions(tmp_path / "out")) == 1


def test_input_glob_catalog_duplicates_and_now_follow_stated_rules(spark, tmp_path):
    """A glob --input is read and fingerprinted (a missing one fails before any work); an item listed twice in the
    catalog takes its last row; "now" for ts_in_future is data.now or the input's modification time, never the
    wall clock, so reruns agree."""
    from spark_jobs.etl import input_fingerprints

    d = tmp_path / "in"
    d.mkdir()
    rows = [f"u{u},i{i},{1700000000 + 3600 * (u * 10 + i)}" for u in range(6) for i in range(5)]
    (d / "part-a.csv").write_text("user,item,time\n" + "\n".join(rows[:15]) + "\n")
    (d / "part-b.csv").write_text("user,item,time\n" + "\n".join(rows[15:]) + "\nu9,i1,1800000000\n")
    os.utime(d / "part-a.csv", (1700500000, 1700500000))
    os.utime(d / "part-b.csv", (1700600000, 1700600000))
    (tmp_path / "items.csv").write_text("item_id,title,category\ni1,Old title,a\ni2,Two,b\ni1,New title,c\n"
                                        "i9,Listed but never seen,b\n")
    args = _args(str(d / "part-*.csv"), "generic", tmp_path / "out", column_map="user_id=user,item_id=item,ts=time",
                 items=str(tmp_path / "items.csv"))
    m = _run(spark, args)
    assert m["input"]["files"] == 2 and m["validated_now_ts"] == 1700600000  # part-b's modification time
    assert m["quarantine"]["by_reason"] == {"ts_in_future": 1}  # 1800000000 is after it (+ max_future_seconds)
    items = {r["item_id"]: (r["title"], r["category"]) for r in _rows(_out(tmp_path) / "items")}
    assert items["i1"] == ("New title", "c") and items["i2"] == ("Two", "b")
    assert "i9" not in items and m["vocab"]["catalog_only_items"] == 0  # data.catalog_items is off by default
    m = _run(spark, args, "data.now=2030-01-01", "data.catalog_items=true")  # the 2027 event is no longer future
    assert m["validated_now_ts"] == 1893456000 and m["quarantine"]["rows_quarantined"] == 0
    # a catalog item without events joins the vocabulary after every item with events, for its content alone
    items = {r["item_id"]: r for r in _rows(_out(tmp_path) / "items")}
    # i0-i2 train; i3 and i4 are only valid/test targets without catalog content: out of vocabulary
    assert m["vocab"]["catalog_only_items"] == 1 and m["vocab"]["num_items"] == 2 + 3 + 1
    assert {"i3", "i4"}.isdisjoint(items) and items["i9"]["item_idx"] == 5 and (items["i9"]["count"], items["i9"]["train_count"]) == (0, 0)
    assert items["i9"]["title"] == "Listed but never seen" and items["i9"]["category_idx"] > 0
    with pytest.raises(FileNotFoundError, match=r"--input '.*nothing-\*.csv': no such file, directory or matching"):
        input_fingerprints(_args(str(d / "nothing-*.csv"), "generic", tmp_path / "out"))


def test_a_failed_job_exits_1_naming_the_log_and_bad_usage_exits_2_before_spark(tmp_path):
    interest = str(Path(sys.executable).parent / "interest")
    f = tmp_path / "UserBehavior.csv"
    f.write_text("1,10,0,pv,1700000000\n1,11,0,zz,1700000001\n1,12,0,zz,1700000002\n")
    base = ["etl", "--format", "taobao", "--output", str(tmp_path / "out"), "--config", "tiny-cpu",
            "--allow-insecure-demo-key"]
    got = subprocess.run([interest, *base, "--input", str(f)], cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [line for line in got.stderr.splitlines() if line.startswith("interest etl")]
    assert got.returncode == 1 and len(lines) == 1, got.stderr[-2000:]
    log = tmp_path / "out" / "interest-etl-error.log"
    assert "failed: QuarantineLimitExceeded: 66.67% of 3 input rows" in lines[0] and str(log) in lines[0]
    assert "Traceback" in log.read_text()
    got = subprocess.run([interest, *base, "--input", str(tmp_path / "missing-*.csv")], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert got.returncode == 2 and "no such file, directory or matching glob" in got.stderr, got.stderr[-2000:]


def test_out_of_memory_ends_the_etl_with_a_message_never_a_hang(tmp_path):
    """A bot with 1M events, no cap on events per user, a 600 MB heap: the JVM runs out of memory grouping that
    user's history; it exits at once (-XX:+ExitOnOutOfMemoryError) and `interest etl` exits 1 naming the cause and
    the fix, publishing nothing."""
    f = tmp_path / "events.csv"
    with open(f, "w") as out:
        out.write("user_id,item_id,ts\n")
        out.writelines(f"u{u},i{(u * 7 + k) % 500},{1700000000 + u * 1000 + k * 60}\n" for u in range(50)
                       for k in range(20))
        out.writelines(f"bot,i{n % 500},{1700000000 + n}\n" for n in range(1_000_000))
    got = subprocess.run([str(Path(sys.executable).parent / "interest"), "etl", "--input", str(f), "--format",
                          "generic", "--output", str(tmp_path / "out"), "--config", "tiny-cpu",
                          "--allow-insecure-demo-key", "--set", "data.spark_driver_memory=600m",
                          "--set", "data.spark_offheap_memory=0", "--set", "data.max_events_per_user=10000000"],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert got.returncode == 1, got.stderr[-3000:]
    assert "failed: SparkJvmExited: Spark's JVM ran out of memory (java.lang.OutOfMemoryError)" in got.stderr
    # `interest etl` as a process of its own (its JVM start, the job up to the failure): no library chatter
    console = got.stdout + got.stderr
    assert "insecure demo key" in console and not chatter(console), console
    assert "--set data.spark_driver_memory=..., now 600m" in got.stderr
    assert current_version(tmp_path / "out") is None and not versions(tmp_path / "out")


def test_events_beyond_the_per_user_cap_are_quarantined_with_their_reason(spark, tmp_path):
    """data.max_events_per_user keeps each user's most recent N events (ties by input position) and quarantines the
    rest with reason user_event_cap; they are counted but not held against the quarantine threshold."""
    f = tmp_path / "events.csv"
    rows = [f"bot,i{k % 3},{1700000000 + k * 60}" for k in range(8)] + [f"u{u},i{u},{1700000000 + u}"
                                                                         for u in range(1, 7) for _ in range(2)]
    rows.insert(3, "bot,i9,1700000420")  # the same time as the bot's 8th event, earlier in the file
    f.write_text("user_id,item_id,ts\n" + "\n".join(rows) + "\n")
    m = _run(spark, _args(f, "generic", tmp_path / "out"), "data.max_events_per_user=5",
             "data.max_quarantine_fraction=0.05")
    q = m["quarantine"]
    assert q["by_reason"] == {"user_event_cap": 4} and q["users_capped"] == 1 and q["fraction"] == 0.0
    _check_reconciles(m)
    capped = sorted((r["item_id"], r["ts"]) for r in _rows(_out(tmp_path) / "quarantine"))
    assert capped == [("i0", "1700000000"), ("i0", "1700000180"), ("i1", "1700000060"), ("i2", "1700000120")]


def test_cli_users_file_joins_side_features_by_pseudonym(spark, tmp_path):
    """`interest etl ... --users FILE --users-map ...` through the CLI's parser: every row of a user carries the
    user's side-feature ids; a users row without an id is quarantined with its reason; counts in the manifest."""
    from interest.cli import build_parser
    from interest_core.user_features import feature_id
    from spark_jobs.etl import config_from_args

    lines = [f"{u},{i},1,pv,{1_700_000_000 + 60 * k}" for k, (u, i) in enumerate(
        [(1, 10), (1, 11), (1, 12), (1, 13), (2, 10), (2, 13), (2, 14), (2, 11), (3, 10), (3, 12), (3, 14)])]
    events = tmp_path / "UserBehavior.csv"
    events.write_text("\n".join(lines) + "\n")
    people = tmp_path / "people.csv"
    people.write_text("uid,years,sex,zip\n1,30,F,10001\n,40,M,20002\n2,x,M,30003\n")
    args = build_parser("etl").parse_args(
        ["etl", "--input", str(events), "--format", "taobao", "--output", str(tmp_path / "out"), "--config",
         "tiny-cpu", "--allow-insecure-demo-key", "--users", str(people), "--users-map",
         "user_id=uid,age=years,gender=sex,region=zip"])
    m = run_etl(spark, args, config_from_args(args))
    b = load_config("tiny-cpu").data.user_feature_buckets
    assert m["users"] == {"rows": 3, "rows_without_user_id": 1, "duplicate_rows": 0, "users": 2,
                          "users_with_events": 2, "unusable_values": {"age": 1}, "features": list(
                              ("age", "gender", "occupation", "region")), "buckets": b}
    assert m["input"]["users"]["files"] == 1
    _check_reconciles(m)  # the users row is not an event: the event counts still reconcile
    q = _rows(_out(tmp_path) / "quarantine")
    assert [r["reason"] for r in q] == ["users_file_no_user_id"]
    pseudo = {u: hmac.new(hmac_key_of_demo(), u.encode(), hashlib.sha256).hexdigest() for u in "123"}
    want = {pseudo["1"]: [feature_id("age", "25-34", b), feature_id("gender", "f", b), 0, feature_id("region", "100", b)],
            pseudo["2"]: [0, feature_id("gender", "m", b), 0, feature_id("region", "300", b)],
            pseudo["3"]: [0, 0, 0, 0]}
    for split in ("train", "valid", "test"):
        rows = _rows(_out(tmp_path) / split)
        assert rows and all(r["user_features"] == want[r["user_id"]] for r in rows), split
