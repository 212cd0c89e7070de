"""End to end: `interest demo` on a few thousand events (Spark local, Ray 2 workers, DeepSpeed ZeRO-2 on CPU)."""
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from interest_core.data_versions import resolve_data_dir
from interest_core.drift import fitting_users
from helpers import chatter, cli_on_the_session_spark, console_captured

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory, spark, ray_session):
    """`interest demo` through the CLI's main() in this process, on the session's Spark and Ray instance (a process
    of its own paid a JVM start, a cold JIT and two Ray starts; the consoles of `interest etl`, `interest train` and a
    Ray job's whole pipeline are checked as processes in tests/test_etl_job.py, test_two_trainings.py and
    test_trainer.py)."""
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp, console_captured() as (stdout, stderr):
        code = cli_on_the_session_spark(mp, spark, ["demo", "--out", str(out), "--users", "1200", "--items", "600",
                                                    "--events", "40000", "--epochs", "4"])
    assert code == 0, stdout.getvalue()[-3000:] + stderr.getvalue()[-3000:]
    return out, stdout.getvalue(), stderr.getvalue()


def test_demo_prints_report_path(demo):
    out, stdout, _ = demo
    assert f"report: {out / 'run' / 'report.html'}" in stdout
    html = (out / "run" / "report.html").read_text()
    assert "popularity" in html and "<img" in html


def test_demo_is_quiet_by_default(demo):
    """Stages, progress lines and results only (interest --verbose shows the libraries' logs)."""
    _, stdout, stderr = demo
    noisy = chatter(stdout + stderr)
    assert not noisy, noisy[:10]
    assert "[interest] step" in stdout + stderr and "== demo: train" in stdout  # progress and stages stay


def test_manifest_reconciles(demo):
    out, *_ = demo
    m = json.loads((resolve_data_dir(out / "data") / "manifest.json").read_text())
    c = m["counts"]
    assert c["rows_in"] == c["rows_valid"] + c["rows_quarantined"]
    assert c["rows_valid"] == c["rows_used"] + c["rows_deduplicated"]
    assert m["rows"]["test"] == pq.ParquetDataset(str(resolve_data_dir(out / "data") / "test")).read().num_rows
    assert (resolve_data_dir(out / "data") / "_SUCCESS").exists()


def test_metrics_json_has_stable_keys_and_model_beats_popularity(demo):
    out, *_ = demo
    m = json.loads((out / "run" / "metrics.json").read_text())
    for key in ("protocol", "valid", "test", "segments", "baselines", "decay", "event_type", "throughput"):
        assert key in m
    assert {"split", "max_len", "k", "negatives_seed"} <= set(m["protocol"])
    for split in ("valid", "test"):
        for proto in ("full", "full_exclude_seen", "sampled100"):
            assert {"hr@10", "ndcg@10", "mrr@10"} <= set(m[split][proto])
    assert {"warm_users", "drifted_users"} <= set(m["segments"])
    # the demo's time split tests on the first event after the cutoff: users with <= 3 events rarely have one
    test = pq.read_table(resolve_data_dir(out / "data") / "test", columns=["history_len"])
    cold = sum(n <= 3 for n in test["history_len"].to_pylist())
    assert ("cold_users" in m["segments"]) == (cold > 0)
    if cold:
        assert m["segments"]["cold_users"]["full"]["n_users"] == cold
    assert {"popularity", "recent_popularity", "cooccurrence", "repeat_last_category"} <= set(m["baselines"])
    assert {"train_seq_per_s", "ingest_rows_per_s"} <= set(m["throughput"])
    negs = pq.read_table(out / "run" / "negatives" / "test.parquet").to_pydict()
    assert len(negs["user_id"]) == m["test"]["sampled100"]["n_users"]
    assert all(len(n) == 100 and t not in n for n, t in zip(negs["negatives"], negs["target_item"]))
    model, pop = m["test"]["full"]["hr@10"], m["baselines"]["popularity"]["full"]["hr@10"]
    assert model > pop * 1.5, (model, pop)


def test_export_has_a_profile_per_test_user_segments_and_model_files(demo):
    out, *_ = demo
    profiles = pq.read_table(out / "export" / "profiles")
    manifest = json.loads((resolve_data_dir(out / "data") / "manifest.json").read_text())
    assert profiles.num_rows == manifest["rows"]["test"] and len(list((out / "export" / "profiles").glob("*.parquet")))
    assert set(profiles.column_names) >= {"user_id", "embedding", "top_item_ids", "interest_tags", "tags_by_level",
                                          "segment", "p_buy_next", "churn_risk"}
    assert all(len(u) == 64 for u in profiles.column("user_id").to_pylist())  # pseudonyms only
    raw = pq.read_table(out / "synthetic" / "events", columns=["user_id"]).column("user_id").to_pylist()
    assert not {str(u) for u in raw} & set(profiles.column("user_id").to_pylist())
    segments = pq.read_table(out / "export" / "segments.parquet").to_pylist()
    summary = json.loads((out / "export" / "export.json").read_text())
    assert len(segments) == summary["segments"]["k"] >= 2 and sum(s["users"] for s in segments) == profiles.num_rows
    assert set(profiles.column("segment").to_pylist()) <= {s["segment"] for s in segments}
    assert all(s["top_categories"] and s["representative_items"] for s in segments if s["users"])
    levels = profiles.column("tags_by_level").to_pylist()[0]
    assert [lv["level"] for lv in levels] == [1, 2] and levels[1]["tags"] == profiles.column("interest_tags")[0].as_py()
    model_dir = out / "export" / "model"
    for name in ("model.safetensors", "user_encoder.onnx", "meta.json", "items.parquet", "model.pt"):
        assert (model_dir / name).exists(), name
    assert summary["model"]["format"] == "onnx" and summary["model"]["max_abs_diff"] < 1e-4
    assert summary["scored_by"] == "driver"  # a small export without a cluster starts no Ray
    # the report shows the export: segment table, embedding map, profile sample
    html = (out / "run" / "report.html").read_text()
    assert "Interests, profiles and segments" in html and (out / "run" / "plots" / "segments_map.png").exists()


def test_cold_items_are_ranked_by_content_in_evaluation_report_and_export(demo):
    """The demo's model reads item content: the synthetic catalog's late items (no training event) are ranked far
    above the uniform random ranking, appear in the report, and reach the exported profiles and item rows."""
    out, *_ = demo
    run = json.loads((out / "run" / "run.json").read_text())
    assert run["content"]["item_features"] == ["category", "brand", "price", "text"]
    assert run["content"]["text"]["items_with_text"] == run["manifest"]["vocab"]["items_in_vocab"]
    assert (out / "text_cache").is_dir()
    cs = json.loads((out / "run" / "metrics.json").read_text())["cold_start"]
    cold = cs["cold_items"]
    assert cold["users"] > 0 and {"model", "random", "popularity", "recent_popularity", "content_knn"} <= set(
        cold["scorers"])
    s = cold["scorers"]
    assert s["model"]["hr@50"] > 3 * s["random"]["hr@50"], s
    html = (out / "run" / "report.html").read_text()
    assert "Cold start" in html and (out / "run" / "plots" / "cold_start.png").exists()
    summary = json.loads((out / "export" / "export.json").read_text())
    assert summary["content"]["item_features"] == run["content"]["item_features"]
    assert summary["content"]["cold_items_recommended"] > 0
    assert summary["model"]["item_embedding"]["file"] == "item_embedding.safetensors"


def test_no_raw_user_id_in_any_output(demo):
    """The generator's user ids (u + 6 digits) appear in no decoded Parquet value and no text file that the ETL,
    training, evaluation, report and export wrote (the synthetic input itself excluded)."""
    import re

    out, *_ = demo
    raw = re.compile(r"(?<![0-9a-z])u\d{6}(?![0-9])")
    assert raw.search(" ".join(pq.read_table(out / "synthetic" / "events", columns=["user_id"])
                               .column("user_id").to_pylist()[:5]))  # the pattern does find raw ids
    checked = 0
    for f in sorted(out.rglob("*")):
        if not f.is_file() or (out / "synthetic") in f.parents or f.suffix in (".png", ".pt", ".safetensors",
                                                                                ".onnx", ".zip"):
            continue
        if f.suffix == ".parquet":
            text = json.dumps(pq.read_table(f).to_pylist(), default=str)
        else:
            try:
                text = f.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary (DeepSpeed shards, TensorBoard events): no text values
        found = raw.search(text)
        assert found is None, f"{f}: {found.group(0)}"
        checked += 1
    assert checked > 50


def test_interest_tags_find_the_planted_interests(demo):
    """metrics.json["tags"]: the profiles' tags against the generator's planted interests, with baselines."""
    out, *_ = demo
    t = json.loads((out / "run" / "metrics.json").read_text())["tags"]
    users = pq.read_table(resolve_data_dir(out / "data") / "test", columns=["user_id"]).column(0).to_pylist()
    # the held-out half only: the tag settings are chosen on the other (interest.tag_scores)
    assert t["users"] == "held_out" and t["n_users"] == int((~fitting_users(users)).sum()) and t["levels"] == 2
    assert set(t["baselines"]) == {"frequency", "history", "popularity"}
    assert t["precision@3"] > 0.5 and t["precision@3"] > 3 * t["baselines"]["popularity"]["precision@3"], t
    assert set(t["by_level"]) == {"1", "2"} and t["migrated"]["n_users"] > 0


def test_recommend_scores_new_histories_from_the_exported_model(demo, tmp_path, capsys):
    """The README's `interest recommend` on the demo's export (through the CLI's main()), with raw item ids as a
    caller has them."""
    from interest.cli import main

    out, *_ = demo
    events = pq.read_table(out / "synthetic" / "events", columns=["user_id", "item_id", "event_type", "ts"])
    rows = events.slice(0, 400).to_pylist()
    users = sorted({r["user_id"] for r in rows})[:2]
    lines = ["user_id,item_id,event_type,ts"] + [f"{r['user_id']},{r['item_id']},{r['event_type']},"
                                                  f"{int(r['ts'].timestamp())}" for r in rows if r["user_id"] in users]
    (tmp_path / "histories.csv").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = main(["recommend", "--model", str(out / "export" / "model"), "--history", str(tmp_path / "histories.csv"),
                 "--top-k", "5"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    got = [json.loads(x) for x in printed.out.splitlines() if x.strip()]
    catalog = set(pq.read_table(out / "export" / "model" / "items.parquet").column("item_id").to_pylist())
    assert [g["user_id"] for g in got] == users
    assert all(len(g["items"]) == 5 and set(g["items"]) <= catalog for g in got)
    assert all(g["scores"] == sorted(g["scores"], reverse=True) for g in got)
    # the demo's model reads user side features: a user without events is recommended to from them alone
    (tmp_path / "users.csv").write_text(f"user_id,age,gender,region\n{users[0]},34,F,00312\nnew-user,25,M,00407\n")
    code = main(["recommend", "--model", str(out / "export" / "model"), "--history", str(tmp_path / "histories.csv"),
                 "--users", str(tmp_path / "users.csv"), "--top-k", "5"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    got = [json.loads(x) for x in printed.out.splitlines() if x.strip()]
    assert [g["user_id"] for g in got] == [*users, "new-user"]
    assert all(len(g["items"]) == 5 and set(g["items"]) <= catalog for g in got)


def test_decay_reaches_metrics_report_and_export(demo, tmp_path, ray_session):
    """The demo's time split trains the survival head: metrics.json["decay"] against its baselines, the report's
    plots, profile columns, and `interest export --reengage-below --address` through the CLI's parser and exit code
    (in this process, by Ray Data actors on the session's Ray instance; the demo's export scored its users in its own
    process, and both give the same profiles)."""
    from interest.cli import main

    out, *_ = demo
    d = json.loads((out / "run" / "metrics.json").read_text())["decay"]
    assert {"horizon_days", "n_users", "auc", "brier", "ece", "baselines", "reliability", "survival"} <= set(d)
    assert set(d["baselines"]) == {"recency", "frequency", "bgnbd"}
    # better than the trivial predictor (a constant probability: AUC 0.5, Brier p(1 - p))
    p = d["positive_rate"]
    assert d["auc"] > 0.65 and d["brier"] < p * (1 - p), d
    html = (out / "run" / "report.html").read_text()
    assert "Interest decay" in html and (out / "run" / "plots" / "decay_survival.png").exists()
    profiles = pq.read_table(out / "export" / "profiles").to_pydict()
    known = [x for x in profiles["p_active_30d"] if x is not None]
    assert len(known) > 0.9 * len(profiles["user_id"]) and all(0 <= x <= 1 for x in known)
    assert all(a <= b + 1e-9 for a, b in zip(profiles["p_active_7d"], profiles["p_active_30d"]) if a is not None)
    import ray

    assert main(["export", "--run", str(out / "run"), "--output", str(tmp_path / "exp"), "--reengage-below",
                 "0.3", "--address", ray.get_runtime_context().gcs_address]) == 0
    exported = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert exported["scored_by"] == "ray_data_actors"  # a cluster given: its actors score (the demo's ran here)
    by_ray = pq.read_table(tmp_path / "exp" / "profiles").to_pydict()
    row = lambda p: {u: (t, a) for u, t, a in zip(p["user_id"], p["top_item_ids"], p["p_active_30d"])}  # noqa: E731
    assert row(by_ray) == row(profiles)
    r = pq.read_table(tmp_path / "exp" / "reengage.parquet").to_pydict()
    assert r["rank"] == list(range(1, len(r["rank"]) + 1)) and all(x < 0.3 for x in r["p_active"])
    assert r["activity_at_risk"] == sorted(r["activity_at_risk"], reverse=True)
    assert all(len(u) == 64 for u in r["user_id"])  # pseudonyms only
    bought = {u: set(b) for u, b in zip(*pq.read_table(resolve_data_dir(out / "data") / "decay_test", columns=[
        "user_id", "bought_items"]).to_pydict().values())}
    assert all(not set(items) & bought[u] for u, items in zip(r["user_id"], r["items"]))


def test_saved_model_carries_the_refitted_decay_head(demo):
    """`interest train` refits the survival head on the chosen encoder (ray_train/decay_refit.py) and saves it:
    the model in RUN/model reproduces the refit's decay_valid log loss, which is no worse than the joint head's."""
    import numpy as np
    import torch

    from interest_core import decay
    from interest_core.batches import collate, read_decay_split
    from ray_train.models.saved import load_model

    out, *_ = demo
    refit = json.loads((out / "run" / "run.json").read_text())["decay_refit"]
    assert refit["positions"] > 0 and refit["valid_users"] > 0 and set(refit["candidates"]) == {"state+counts",
                                                                                                "counts"}
    assert refit["chosen"] in ("joint", "state+counts", "counts")
    best = min([refit["valid_log_loss"]["joint"]] + [c["valid_log_loss"] for c in refit["candidates"].values()])
    assert refit["valid_log_loss"]["refit"] == best
    model, meta = load_model(out / "run")
    # the saved head is the chosen one: the counts-only candidate is saved with its state input gated off
    assert float(model.heads["decay"].state_gate) == (0.0 if refit["chosen"] == "counts" else 1.0), refit
    rows = read_decay_split(resolve_data_dir(out / "data"), "valid")
    with torch.no_grad():
        h = model.decay_hazards(collate(rows, model.args.max_len)).numpy()
    y = np.asarray(rows["label"], dtype=np.float64)
    p = np.clip(decay.p_active_within(h, decay.elapsed_s(rows), meta["split"]["horizon_days"] * decay.DAY_S),
                1e-7, 1 - 1e-7)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    assert abs(log_loss - refit["valid_log_loss"]["refit"]) < 1e-4, (log_loss, refit)


def test_next_action_is_scored_on_held_out_events_against_its_baselines(demo):
    """metrics.json["event_type"] from action_test/ (the events in (C, C + H] under the demo's time split): a
    head that learned (log loss below the type frequencies), per-type AUC keyed by real type names, and the
    profiles' p_buy_next."""
    out, *_ = demo
    e = json.loads((out / "run" / "metrics.json").read_text())["event_type"]
    data = resolve_data_dir(out / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    assert e["n_targets"] > 100 and e["n_targets"] == sum(
        len(r["ts"]) - r["first_target"] for r in pq.read_table(data / "action_test").to_pylist())
    assert set(e["per_type_auc"]) <= set(manifest["vocab"]["event_types"][1:]) and "buy" in e["per_type_auc"]
    assert e["log_loss"] < e["baseline_log_loss"] == e["baselines"]["frequency"]["log_loss"], e
    assert e["macro_auc"] > 0.55 and set(e["baselines"]) == {"frequency", "transition"}
    assert sum(map(sum, e["confusion"]["counts"])) == e["n_targets"]
    p = [x for x in pq.read_table(out / "export" / "profiles").column("p_buy_next").to_pylist()]
    assert p and all(x is not None and 0 < x < 1 for x in p)


def test_vae_run_and_interest_migration_reach_metrics_and_report(demo):
    """The demo trains a Mult-VAE run beside the sequence model (`interest train --model vae`) and evaluates the
    sequence run with `--latent`: metrics.json["migration"] holds the three drift scores' AUCs against the planted
    migrations, the flag and its paths; the next-item segments gain `migrated`; the report shows the section; the
    export (`--latent`) writes the migration fields of every profile."""
    out, stdout, stderr = demo
    vae = json.loads((out / "vae" / "run.json").read_text())
    assert "split=leave-one-out" not in stdout + stderr  # time-split data: no run of it says otherwise
    assert vae["model"] == "vae" and vae["best_valid_score"] > 0
    m = json.loads((out / "run" / "metrics.json").read_text())["migration"]
    manifest = json.loads((resolve_data_dir(out / "data") / "manifest.json").read_text())
    assert manifest["rows"]["drift_test"] >= m["n_users"] > 0 and m["n_migrated"] > 0
    assert set(m["auc"]) == {"latent", "sequence", "category_js"}
    assert m["auc"]["latent"] > 0.75 and m["auc"]["category_js"] > 0.75, m["auc"]  # chance is 0.5
    assert m["flag_score"] == "latent" and m["threshold"]["chosen_on"] == "validation F1"
    assert 0 < m["n_flagged"] < m["n_users"] and m["precision"] > 0.3
    assert m["paths"] and all(p["from"] != p["to"] and p["users"] > 0 for p in m["paths"])
    segments = json.loads((out / "run" / "metrics.json").read_text())["segments"]
    assert 0 < segments["migrated"]["full"]["n_users"] <= m["n_flagged"]  # flagged users with a test target
    # the export (`--latent`) flags exactly the evaluated segment's users, with the same rule
    exp = pq.read_table(out / "export" / "profiles").to_pydict()
    flagged = [i for i, f in enumerate(exp["migrated"]) if f]
    assert len(flagged) == segments["migrated"]["full"]["n_users"]
    assert all(exp["migration_time"][i] is not None and exp["drift_latent"][i] > 0 and exp["categories_after"][i]
               for i in flagged)
    scored = [i for i, f in enumerate(exp["migrated"]) if f is not None]
    assert all(exp["drift_sequence"][i] is not None and exp["drift_category_js"][i] is not None for i in scored)
    rule = json.loads((out / "export" / "export.json").read_text())["migration"]["flag"]
    assert rule["score"] == "latent" and rule["threshold"] == pytest.approx(m["threshold"]["value"], rel=1e-6)
    assert "interest migration AUC latent" in stdout
    html = (out / "run" / "report.html").read_text()
    assert "Interest migration" in html and (out / "run" / "plots" / "migration_drift.png").exists()
    assert m["latent_map"]["trajectories"] and (out / "run" / "plots" / "migration_latent_map.png").exists()
    # the vae run is evaluated like any run: next-item under the same protocols, its own latent migration score
    # (`interest evaluate` as a process of its own, whose console is quiet)
    proc = subprocess.run([sys.executable, "-m", "interest.cli", "evaluate", "--run", str(out / "vae")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not chatter(proc.stdout + proc.stderr) and "evaluate:" in proc.stdout, proc.stdout + proc.stderr
    v = json.loads((out / "vae" / "metrics.json").read_text())
    assert v["test"]["full"]["hr@10"] > 1.5 * v["baselines"]["popularity"]["full"]["hr@10"]
    assert v["decay"] is None and v["event_type"] is None  # no per-event heads on a bag model
    assert v["migration"]["auc"]["sequence"] is None and v["migration"]["auc"]["latent"] > 0.75
