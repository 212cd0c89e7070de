"""write_report on a fake run directory: sections, numbers, plots, escaping, missing inputs."""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pytest

from interest import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROTOCOLS = ("full", "full_exclude_seen", "sampled100")


def _metrics_block(base: float, n_users: int, n_unrankable: int = 0) -> dict:
    out = {}
    for k in (5, 10, 20):
        out[f"hr@{k}"] = round(base * (1 + k / 20), 4)
        out[f"ndcg@{k}"] = round(base * (0.5 + k / 40), 4)
        out[f"mrr@{k}"] = round(base * 0.4, 4)
    out["n_users"] = n_users
    out["n_unrankable"] = n_unrankable
    return out


def _protocols(base: float, n_users: int) -> dict:
    return {"full": _metrics_block(base, n_users, 3), "full_exclude_seen": _metrics_block(base * 1.1, n_users, 3),
            "sampled100": _metrics_block(base * 3, n_users, 3)}


ACTION_PLOTS = {"action_roc", "action_confusion"}


def migration_block() -> dict:
    """metrics.json["migration"] as ``interest evaluate`` writes it (interest/migration_scores.py)."""
    return {"window_days": 14.0, "divergence": "w2", "flag_score": "latent", "n_users": 863,
            "auc": {"latent": 0.8971, "sequence": 0.7823, "category_js": 0.9038}, "time_within_7d": 0.8289,
            "threshold": {"value": 0.98, "chosen_on": "validation F1", "valid_f1": 0.68, "n_fit_users": 431},
            "n_held_out": 432, "n_migrated": 115, "n_flagged_held_out": 52, "f1": 0.6909,
            "n_flagged": 105, "precision": 0.7238, "recall": 0.6609, "n_true_positives": 76,
            "paths": [{"from": "Cat05/Sub30", "to": "Cat09/Sub47", "users": 3}, {"from": "A", "to": "B", "users": 1}],
            "histogram": {"score": "latent", "counts": [5, 3, 1], "edges": [-1.0, 0.0, 1.0, 2.0]},
            "latent_map": {"early": [[0.1, 0.2], [-1.0, 0.5], [0.3, -0.7]], "recent": [[1.1, 0.9], [0.2, 0.1]],
                           "explained_variance": [0.21, 0.12], "window_days": 14.0, "step_days": 4.6667,
                           "trajectories": [{"points": [[-1.0, 0.5], [0.0, 0.6], [1.2, 0.8]],
                                             "days_before_end": [9.33, 4.67, 0.0], "estimated_days_before_end": 6.0,
                                             "planted_days_before_end": 5.5}]}}


def action_block() -> dict:
    """metrics.json["event_type"] as ``interest evaluate`` writes it (interest/action_scores.py)."""
    roc = {"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, 0.7, 1.0]}
    return {"macro_auc": 0.7123, "per_type_auc": {"view": 0.6012, "buy": 0.8834}, "log_loss": 0.4411,
            "baseline_log_loss": 0.4952, "accuracy": 0.8765, "balanced_accuracy": 0.5521,
            "majority_class_accuracy": 0.8702, "n_targets": 12345, "n_users": 678,
            "baselines": {"frequency": {"macro_auc": 0.5, "per_type_auc": {"view": 0.5, "buy": 0.5},
                                        "log_loss": 0.4952},
                          "transition": {"macro_auc": 0.6031, "per_type_auc": {"view": 0.5612, "buy": 0.7893},
                                         "log_loss": 0.4702}},
                "confusion": {"types": ["view", "buy"], "counts": [[9000, 1000], [300, 2045]]},
                "roc": {"view": roc, "buy": roc}}


DECAY_PLOTS = {"decay_survival", "decay_reliability", "decay_half_life"}


def decay_block() -> dict:
    """metrics.json["decay"] as ``interest evaluate`` writes it under the time split."""
    curve = [0.81, 0.53, 0.40, 0.25, 0.12, 0.068, 0.023, 0.0063]
    return {
        "horizon_days": 7.0, "n_users": 5000, "positive_rate": 0.42, "auc": 0.7123, "brier": 0.1876, "ece": 0.0543,
        "calibration": {"hazard_scale": 0.6125, "fitted_on": "decay_valid", "n_users": 4321,
                        "uncalibrated": {"brier": 0.1999, "ece": 0.1234}},
        "baselines": {"recency": {"auc": 0.7345, "brier": 0.1911}, "frequency": {"auc": 0.6543, "brier": 0.2211},
                      "bgnbd": {"auc": 0.7011, "brier": 0.1799}},
        "reliability": {"edges": [i / 10 for i in range(11)], "count": [0, 117, 108, 100, 113, 92, 74, 53, 60, 34],
                        "mean_pred": [None] + [0.05 + i / 10 for i in range(1, 10)],
                        "rate": [None] + [0.03 + i / 11 for i in range(1, 10)]},
        "survival": {"days": [1.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0], "all": curve,
                     "segments": {"1-3 events": {"n_users": 640, "curve": [min(1.0, c * 1.2) for c in curve]},
                                  "4-20 events": {"n_users": 2630, "curve": curve},
                                  "21+ events": {"n_users": 1730, "curve": [c * 0.9 for c in curve]}},
                     "observed_at_horizon": 0.58},
        "half_life_days": {"median": 8.99, "beyond_365_days": 0.0312,
                           "histogram_edges": [(1 / 24) * (365 * 24) ** (i / 12) for i in range(13)],
                           "histogram_counts": [2, 11, 30, 42, 35, 71, 164, 179, 215, 40, 8, 1]},
    }


def tags_block() -> dict:
    """metrics.json["tags"] as ``interest evaluate`` writes it on synthetic data (interest/tag_scores.py)."""
    one = lambda p: {"precision@3": p, "n_users": 900, "migrated": {"precision@3": p / 2, "n_users": 150},  # noqa
                     "by_level": {"1": p + 0.05, "2": p}}
    return one(0.6789) | {"baselines": {"frequency": one(0.6512), "history": one(0.6601), "popularity": one(0.0345)},
                          "levels": 2, "settings": {"half_life_days": 30.0, "predicted_weight": 0.25}}


def write_export(run_dir: Path) -> None:
    """RUN/export.json and the export's segments.parquet as ``interest export`` leaves them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from interest.export.segments import SEGMENT_SCHEMA

    out = run_dir / "export_dir"
    out.mkdir()
    pq.write_table(pa.table({"segment": [0, 1], "users": [70, 30], "share": [0.7, 0.3], "mean_events": [12.5, 40.0],
                             "mean_days_since_last": [3.25, 9.5], "purchase_rate": [0.02, 0.05],
                             "mean_p_buy_next": [0.01, 0.03], "mean_churn_risk": [0.4, 0.2],
                             "top_categories": [["Shoes/Running", "Bags"], ["Toys<b>"]],
                             "top_category_shares": [[0.6, 0.4], [1.0]], "representative_items": [["i1"], ["i2"]],
                             "centroid": [[0.0, 1.0], [1.0, 0.0]]}, schema=SEGMENT_SCHEMA), out / "segments.parquet")
    export = {"output": str(out), "profiles": 100, "reengage": 12,
              "segments": {"k": 2, "sample_users": 100, "silhouette": {"2": 0.31, "3": 0.22},
                           "chosen_by": "silhouette"},
              "embedding_map": {"x": [0.1, 0.5, -0.3], "y": [0.2, -0.1, 0.0], "segment": [0, 1, 0],
                                "explained_variance": [0.4, 0.2]},
              "profile_sample": [{"user_id": "ab" * 32, "n_events": 12, "interest_tags": ["Shoes/Running"],
                                  "top_item_ids": ["i1", "i7"], "p_buy_next": 0.0123, "segment": 0,
                                  "churn_risk": 0.5, "migrated": True, "categories_before": ["Shoes/Running"],
                                  "categories_after": ["Baby/Strollers"]}]}
    (run_dir / "export.json").write_text(json.dumps(export))


def make_run(run_dir: Path, data_dir: str = "/data/retailrocket", epochs: int = 8, full: bool = True) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    run = {
        "data_dir": data_dir, "model": "sasrec",
        "config": {"data": {"max_len": 50, "split": "leave-one-out"}, "model": {"arch": "sasrec", "dim": 64},
                   "train": {"workers": 2, "zero_stage": 2, "lr": 0.001}, "eval": {"ks": [5, 10, 20]}},
        "num_params": 1234567, "world_size": 2, "zero_stage": 2, "wall_time_s": 3725.4,
        "started": "2024-05-01T12:00:00+00:00", "finished": "2024-05-01T13:02:05+00:00",
        "best_epoch": 6, "best_valid_ndcg@10": 0.1357, "stopped_early": True, "global_batch": 256,
        "manifest": {"rows": {"train": 987654, "valid": 6040, "test": 6040}, "num_items": 3706, "num_users": 6040},
        "defaults_used": {"train.lr": 0.001, "model.dim": 64},
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    if not full:
        return run_dir
    history = []
    for e in range(1, epochs + 1):
        history.append({"epoch": e, "step": 100 * e, "train_loss": 7.0 - 0.5 * e + 0.01 * e * e,
                        "valid": {"ndcg@10": 0.05 + 0.012 * min(e, 6), "hr@10": 0.1 + 0.02 * min(e, 6),
                                  "mrr@10": 0.03 + 0.008 * min(e, 6)},
                        "seq_per_s": 5000 + 37 * e, "wall_s": 450.0 * e, "lr": 1e-3 * (1 - e / 10)})
    (run_dir / "history.json").write_text(json.dumps(history))
    steps = [{"step": s, "loss": 7.2 - 3.5 * s / (100 * epochs) + 0.2 * math.sin(s), "seq_per_s": 4800 + (s % 7) * 60,
              "wall_s": 4.5 * s} for s in range(10, 100 * epochs + 1, 10)]
    (run_dir / "steps.json").write_text(json.dumps(steps))
    baselines = {"popularity": _protocols(0.02, 6040), "recent_popularity": _protocols(0.03, 6040),
                 "cooccurrence": _protocols(0.07, 6040), "repeat_last_category": _protocols(0.01, 6040)}
    baselines["cooccurrence"]["sampled100"]["hr@20"] = 0.9999  # a baseline wins one column
    metrics = {
        "protocol": {"split": "leave-one-out", "max_len": 50, "ks": [5, 10, 20], "negatives_seed": 2024,
                     "sampled_negatives": 100},
        "valid": _protocols(0.1111, 6040),
        "test": _protocols(0.1234, 6040),
        "segments": {"cold_users": _protocols(0.0456, 1234), "warm_users": _protocols(0.15, 4806),
                     "cold_items": _protocols(0.0012, 321), "drifted_users": _protocols(0.08, 777),
                     "event_type=buy": _protocols(0.14, 55)},
        "baselines": baselines,
        "decay": decay_block(),
        "event_type": action_block(),
        "migration": migration_block(),
        "tags": tags_block(),
        "cold_start": cold_start_block(),
        "ablation": {"data": "/data/x", "protocol": "full", "variants": {
            "ID only": {"run": "/r/id", "all": {"ndcg@10": 0.1111, "hr@50": 0.4}, "cold_items": {"hr@50": 0.0007},
                        "cold_users": {"hr@50": 0.21}},
            "ID + category + text": {"run": "/r/c", "all": {"ndcg@10": 0.1234, "hr@50": 0.42},
                                     "cold_items": {"hr@50": 0.5678}, "cold_users": {"hr@50": 0.25}}}},
        "throughput": {"train_seq_per_s": 5150.0, "ingest_rows_per_s": 250000.0},
    }
    metrics["segments"]["cold_items"]["full"]["ndcg@10"] = float("nan")   # NaN -> n/a
    metrics["segments"]["drifted_users"]["full"]["hr@10"] = None           # null -> n/a
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    write_export(run_dir)
    return run_dir


def cold_start_block() -> dict:
    def seg(users, model, content):
        m = lambda x: {f"{n}@{k}": x * k / 50 for k in (5, 10, 20, 50) for n in ("hr", "ndcg", "mrr")}  # noqa: E731
        return {"users": users, "scorers": {"model": m(model) | {"n_users": users}, "content_knn": m(content),
                                            "popularity": m(0.0), "recent_popularity": m(0.01), "random": m(0.0317)}}
    return {"protocol": "full", "cold_items_fraction": 0.1, "cold_items": seg(321, 0.6923, 0.6516),
            "cold_users": seg(1234, 0.4321, 0.3)}


def _img_srcs(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', text)


def test_full_report(tmp_path):
    run_dir = make_run(tmp_path / "run", data_dir="/data/<script>alert('x')</script>&more")
    out = report.write_report(run_dir)
    assert out == run_dir / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")

    for section in ("Run summary", "Training curves", "Model vs baselines (test split)", "Segments (test split)",
                    "Throughput", "Interest decay", "Next action", "Interest migration", "Cold start",
                    "Ablation (/data/x)", "content kNN (text)", "uniform random", "0.6923", "0.5678",
                    "Metric definitions",
                    "Per-epoch history"):
        assert section in text, section
    for s in ("latent (Mult-VAE posteriors)", "0.8971", "0.9038", "0.8289", "validation F1", "432 held-out users"):
        assert s in text, s
    # summary numbers
    for s in ("1,234,567 (1.23 M)", "1 h 02 min 05 s", "0.1357", "train.lr", "ZeRO stage", "256", "yes — stopped"):
        assert s in text, s
    # model and every baseline, every protocol; best per column bold
    for name in ("sasrec (model)", "popularity", "recent_popularity", "cooccurrence", "repeat_last_category"):
        assert name in text
    for p in PROTOCOLS:
        assert f"<code>{p}</code>" in text
    assert "<b>0.1234</b>" in text          # model test full NDCG@20 (= base) is the best in its column
    assert "<b>0.9999</b>" in text          # the one column the cooccurrence baseline wins
    assert "0.0200" in text                 # a popularity number appears beside the model's
    assert "vs best baseline cooccurrence" in text
    # segments with user counts and NaN / null handled
    for s in ("cold_users", "warm_users", "cold_items", "drifted_users", "event_type=buy", "1,234", "4,806"):
        assert s in text, s
    assert "n/a" in text and "nan" not in text.lower().replace("span", "")
    # decay, event type, throughput
    for s in ("0.7123", "0.1876", "0.8765", "5,150", "250,000", "0.4952", "0.6031", "0.8834", "12,345"):
        assert s in text, s
    assert "ndcg@k = 1/log2(rank + 1)" in text.lower()

    # escaping: the script tag from run.json never appears raw
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;more" in text

    # plots: every referenced image exists and is a real PNG
    srcs = _img_srcs(text)
    assert {Path(s).stem for s in srcs} == ({"loss", "valid", "baselines", "segments", "throughput"} | DECAY_PLOTS
                                             | ACTION_PLOTS | {"segments_map", "migration_drift", "migration_paths",
                                                                "migration_latent_map", "cold_start"})
    for src in srcs:
        png = run_dir / src
        assert png.parent == run_dir / "plots"
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_only_run_json(tmp_path):
    run_dir = make_run(tmp_path / "bare", full=False)
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "loss.png").write_bytes(b"stale")  # from an earlier report
    out = report.write_report(run_dir)
    text = out.read_text(encoding="utf-8")
    assert "Run summary" in text and "1,234,567" in text
    assert "not available" in text
    for section in ("Training curves", "Model vs baselines", "Segments", "Throughput", "Interest decay",
                    "Next action"):
        assert section in text
    assert _img_srcs(text) == []
    assert not (run_dir / "plots" / "loss.png").exists()


def test_partial_and_broken_inputs(tmp_path):
    run_dir = make_run(tmp_path / "partial")
    (run_dir / "history.json").write_text("{not json")
    (run_dir / "steps.json").unlink()
    m = json.loads((run_dir / "metrics.json").read_text())
    m["decay"] = None
    m["event_type"] = None
    m["tags"] = None
    m["migration"] = None
    m["cold_start"] = None
    del m["baselines"]
    (run_dir / "export.json").write_text("{broken")
    m["test"]["full"]["ndcg@10"] = "oops"
    (run_dir / "metrics.json").write_text(json.dumps(m))
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "history.json could not be read" in text
    assert "Baselines: not available" in text
    assert "Decay evaluation: not available — it needs a time split at the ETL " \
           "(--split time --cutoff DATE --horizon-days H)" in text
    assert "Next-action evaluation: not available" in text
    assert "Interest-tag precision: not available" in text and "Profiles and segments: not available" in text
    assert "Interest-migration evaluation: not available" in text
    assert "Cold-start evaluation (no test user in a cold segment): not available" in text
    srcs = {Path(s).stem for s in _img_srcs(text)}
    assert srcs == {"segments", "baselines"}  # no history/steps -> no loss, valid, throughput curves


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([])
    run_dir = make_run(tmp_path / "cli", full=False)
    assert report.run(parser.parse_args(["--run", str(run_dir)])) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert report.run(parser.parse_args(["--run", str(tmp_path / "missing")])) == 2
    assert "run.json" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        report.write_report(tmp_path / "missing")


def _keep_ks(obj, ks):
    """obj without the hr/ndcg/mrr@K keys whose K is not in ks (recursively)."""
    if isinstance(obj, dict):
        out = {}
        for key, v in obj.items():
            m = re.match(r"^(hr|ndcg|mrr)@(\d+)$", key)
            if m is None or int(m.group(2)) in ks:
                out[key] = _keep_ks(v, ks)
        return out
    if isinstance(obj, list):
        return [_keep_ks(v, ks) for v in obj]
    return obj


def test_selection_metric_and_any_ks(tmp_path):
    """New run.json (selection + best_valid_score) and metrics/history with ks=[5, 20]: no @10 anywhere."""
    run_dir = make_run(tmp_path / "ks")
    ks = (5, 20)
    run = json.loads((run_dir / "run.json").read_text())
    del run["best_valid_ndcg@10"]
    run["selection"] = {"protocol": "full", "metric": "ndcg@5"}
    run["best_valid_score"] = 0.2468
    run["config"]["eval"]["ks"] = list(ks)
    (run_dir / "run.json").write_text(json.dumps(run))
    history = json.loads((run_dir / "history.json").read_text())
    for r in history:
        r["valid"] = {f"{m}@{k}": 0.01 * r["epoch"] * (i + 1) for k in ks for i, m in enumerate(("hr", "ndcg", "mrr"))}
    (run_dir / "history.json").write_text(json.dumps(history))
    metrics = _keep_ks(json.loads((run_dir / "metrics.json").read_text()), ks)
    metrics["protocol"]["ks"] = list(ks)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "<tr><th>Best validation NDCG@5</th><td>0.2468</td></tr>" in text
    assert "no better validation NDCG@5 within the patience" in text
    assert "Validation NDCG@5 / HR@5 at each validation" in text          # the selection metric's K drives the curves
    assert "valid NDCG@5" in text and "valid NDCG@20" not in text
    assert "Model NDCG@5" in text and "Test NDCG@5 per protocol" in text and "Model test NDCG@5 per segment" in text
    assert "NDCG@20" in text and "HR@20" in text                  # every K still has its table column
    assert "@10" not in text
    assert {Path(s).stem for s in _img_srcs(text)} == set(report.PLOT_NAMES)


def test_selection_protocol_and_fallback_k(tmp_path):
    """A non-default selection protocol is named; a selection K absent from the metrics falls back."""
    run_dir = make_run(tmp_path / "proto")
    run = json.loads((run_dir / "run.json").read_text())
    run["selection"] = {"protocol": "full_exclude_seen", "metric": "hr@50"}
    run["best_valid_score"] = 0.4321
    (run_dir / "run.json").write_text(json.dumps(run))
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "<tr><th>Best validation HR@50 (full_exclude_seen)</th><td>0.4321</td></tr>" in text
    assert "Validation NDCG@10 / HR@10 at each validation" in text        # history has only @10
    assert "Test NDCG@10 per protocol" in text                   # metrics have 5, 10, 20: the middle one


def test_old_run_json_best_valid(tmp_path):
    """run.json without ``selection`` (best_valid_ndcg@10) still shows its value under NDCG@10."""
    run_dir = make_run(tmp_path / "old")
    run = json.loads((run_dir / "run.json").read_text())
    assert "selection" not in run and "best_valid_score" not in run
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "<tr><th>Best validation NDCG@10</th><td>0.1357</td></tr>" in text
    assert "no better validation NDCG@10 within the patience" in text


def _decay_html(text: str) -> str:
    return text[text.index('<h2 id="decay">'):text.index('<h2 id="event-type">')]


def test_decay_section(tmp_path):
    run_dir = make_run(tmp_path / "decay")
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    sec = _decay_html(text)
    assert "P(active again within 7 days) after the cutoff, for 5,000 users; 42.0% were active." in sec
    # model vs baselines: AUC (higher is better) and Brier (lower is better), best of each column bold
    for label in ("sasrec (model)", "recency", "frequency", "BG/NBD"):
        assert f'<th class="rowhead">{label}</th>' in sec, label
    assert '<tr class="model"><th class="rowhead">sasrec (model)</th><td class="num">0.7123</td>' \
           '<td class="num">0.1876</td></tr>' in sec
    assert "<b>0.7345</b>" in sec and "<b>0.1799</b>" in sec            # recency wins AUC, BG/NBD wins Brier
    assert sec.count("<b>0.") == 2
    for s in ("0.6543", "0.2211", "0.7011", "0.1911"):
        assert s in sec, s
    assert "Model ECE 0.0543" in sec and "scaled by 0.6125, fitted on the 4,321 users" in sec
    assert "uncalibrated: Brier 0.1999, ECE 0.1234" in sec
    # captions: observed share at H (and the curve there), ECE, the share beyond 365 days
    assert "no event within 7 days, 0.5800; the population curve at H is 0.5300" in sec
    assert "median 8.99 days; 3.1% of users beyond 365 days" in sec
    srcs = {Path(s).stem: s for s in _img_srcs(sec)}
    assert set(srcs) == DECAY_PLOTS
    for src in srcs.values():
        data = (run_dir / src).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert "not available" not in sec

    # decay gone (leave-one-out): the note, and the decay plots of the earlier report are removed
    m = json.loads((run_dir / "metrics.json").read_text())
    del m["decay"]
    (run_dir / "metrics.json").write_text(json.dumps(m))
    sec = _decay_html(report.write_report(run_dir).read_text(encoding="utf-8"))
    assert "not available" in sec and "--split time --cutoff DATE --horizon-days H" in sec
    assert _img_srcs(sec) == []
    assert not any((run_dir / "plots" / f"{name}.png").exists() for name in DECAY_PLOTS)


def test_decay_section_partial(tmp_path):
    """A decay block with only some parts (and NaN / null / odd values) renders what it has."""
    run_dir = make_run(tmp_path / "decay_partial")
    m = json.loads((run_dir / "metrics.json").read_text())
    d = m["decay"]
    del d["reliability"], d["half_life_days"], d["positive_rate"], d["calibration"]
    d["baselines"]["bgnbd"] = {"auc": float("nan"), "brier": None}
    d["survival"]["segments"] = {"<b>x</b>": {"n_users": 3, "curve": [0.5] * 8}}
    del d["survival"]["observed_at_horizon"]
    (run_dir / "metrics.json").write_text(json.dumps(m))
    sec = _decay_html(report.write_report(run_dir).read_text(encoding="utf-8"))
    assert "for 5,000 users;" in sec and "were active" in sec and "n/a" in sec
    assert "<b>0.7345</b>" in sec and "<b>0.1876</b>" in sec            # null / NaN never wins a column
    assert "Reliability table: not available" in sec and "Half-life distribution: not available" in sec
    assert "<b>x</b>" not in sec
    assert {Path(s).stem for s in _img_srcs(sec)} == {"decay_survival"}


def test_decay_observed_from_positive_rate(tmp_path):
    """metrics.json written before survival.observed_at_horizon: the marker uses 1 - positive_rate."""
    run_dir = make_run(tmp_path / "decay_old")
    m = json.loads((run_dir / "metrics.json").read_text())
    del m["decay"]["survival"]["observed_at_horizon"]
    (run_dir / "metrics.json").write_text(json.dumps(m))
    sec = _decay_html(report.write_report(run_dir).read_text(encoding="utf-8"))
    assert "no event within 7 days, 0.5800 (from 1 − the active share" in sec


def test_profiles_section_shows_tags_segments_map_and_a_sample(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "data" / "items").mkdir(parents=True)  # the run's data: items named by their titles
    pq.write_table(pa.table({"item_id": ["i1", "i2"], "title": ["WHITE HANGING HEART T-LIGHT HOLDER", None]}),
                   tmp_path / "data" / "items" / "part-0.parquet")
    run_dir = make_run(tmp_path / "p", data_dir=str(tmp_path / "data"))
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    section = text[text.index('id="profiles"'):]
    assert section.count("WHITE HANGING HEART T-LIGHT HOLDER (i1)") == 2  # a segment's item and a recommendation
    assert "i2</td>" in section and "i7</td>" in section  # no title: the id
    assert "0.6789" in section and "0.0345" in section and "level 2" in section     # tags vs baselines
    assert "k=2: 0.3100" in section and "Shoes/Running" in section and "Toys&lt;b&gt;" in section
    assert "abababababab…" in section and "ab" * 32 not in section                   # pseudonyms, shortened
    assert "yes (Shoes/Running → Baby/Strollers)" in section                         # the migration fields
    assert (run_dir / "plots" / "segments_map.png").exists()
    (run_dir / "export.json").unlink()
    text = report.write_report(run_dir).read_text(encoding="utf-8")
    assert "Profiles and segments: not available" in text and not (run_dir / "plots" / "segments_map.png").exists()
