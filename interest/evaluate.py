"""`interest evaluate --run RUN`: the best checkpoint and the baselines (interest_core.baselines) on the same split,
protocols and sampled negatives -> RUN/metrics.json. Keys: protocol, migration, valid, test, segments, baselines,
decay, tags, event_type, throughput (docs/metrics.md)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interest.action_scores import action_metrics
from interest.cold_start import ablation, cold_start_section, run_text_embeddings
from interest.decay_scores import decay_metrics
from interest.migration_scores import load_latent, migration_metrics
from interest.profiles import ProfileScorer, settings_from
from interest.tag_scores import tag_metrics
from interest_core.baselines import Baselines
from interest_core.batches import read_eval_split
from interest_core.config import config_from_dict
from interest_core.contract import check_same_data, item_categories, load_manifest
from interest_core.data_versions import readable_data_dir
from interest_core.metrics import PROTOCOLS
from interest_core.tags import category_names
from interest_core.scoring import draw_split_negatives, new_accumulators, results, row_segments, score_rows
from interest_core.windows import WindowRule
from ray_train.models.saved import load_model


def write_negatives(path: Path, rows: dict, negatives: np.ndarray) -> None:
    """The sampled100 negatives every scorer used (user_id, target_item, negatives), so papers' numbers compare."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"user_id": rows["user_id"], "target_item": rows["target_item"],
                             "negatives": [list(map(int, r)) for r in negatives]}), path)


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None, latent_run: str | Path | None = None,
                 compare: list[str | Path] | None = None) -> dict:
    """latent_run: a run of --model vae on the same data, whose posteriors give a sequence run the latent drift;
    compare: evaluated runs on the same data with other item representations (metrics.json["ablation"])."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    explicit = data_dir is not None
    data_dir = readable_data_dir(data_dir or run["data_dir"])
    manifest = load_manifest(data_dir)
    check_same_data(run, data_dir, manifest, explicit)
    cfg = config_from_dict(run["config"])
    model, meta = load_model(run_dir)
    max_len, num_items = model.args.max_len, model.args.num_items
    event_types = manifest["vocab"]["event_types"]
    common = dict(max_len=max_len, batch_size=cfg.eval.batch_size)
    out: dict = {"protocol": {
        "split": manifest["split"]["kind"], "max_len": max_len, "k": list(cfg.eval.ks),
        "negatives_seed": cfg.eval.negatives_seed, "sampled_negatives": cfg.eval.sampled_negatives,
        "ties": "pessimistic: equal scores rank above the target", "selection": cfg.eval.select_protocol,
        "cold_user_max_events": cfg.data.cold_user_max_events, "model_checkpoint_epoch": meta["epoch"] - 1}}
    out["migration"], migrated = _migration(model, cfg, data_dir, num_items, latent_run)
    for split in ("valid", "test"):
        rows = read_eval_split(data_dir, split)
        negatives = draw_split_negatives(rows, num_items, cfg.eval.sampled_negatives, cfg.eval.negatives_seed)
        write_negatives(run_dir / "negatives" / f"{split}.parquet", rows, negatives)
        accs = new_accumulators(cfg.eval.ks)
        segs = (lambda i, rows=rows: row_segments(rows, i, cfg.data.cold_user_max_events, event_types, migrated)) \
            if split == "test" else None
        score_rows(model.score_all, rows, accs, negatives=negatives, segments=segs, **common)
        res = results(accs)
        out[split] = {p: res[p].get("all", {}) for p in PROTOCOLS}
    test_rows, test_negatives, segments_acc = rows, negatives, res
    out["segments"] = {}
    for seg in sorted({g for p in PROTOCOLS for g in segments_acc[p] if g != "all"}):
        out["segments"][seg] = {p: segments_acc[p].get(seg, {}) for p in PROTOCOLS}
    base = Baselines(data_dir, num_items, cfg.eval.recent_popularity_days, WindowRule.from_manifest(manifest),
                     text=run_text_embeddings(run, data_dir, num_items), seed=cfg.eval.negatives_seed)
    out["baselines"], base_segments = {}, {}
    segs = lambda i: row_segments(test_rows, i, cfg.data.cold_user_max_events, event_types)  # noqa: E731
    for name, scorer in base.scorers().items():
        accs = new_accumulators(cfg.eval.ks)
        score_rows(scorer, test_rows, accs, negatives=test_negatives, segments=segs, **common)
        res = results(accs)
        out["baselines"][name] = {p: r.get("all", {}) for p, r in res.items()}
        base_segments[name] = res["full"]
    out["cold_start"] = cold_start_section(segments_acc["full"], base_segments, manifest)
    out["ablation"] = ablation(run_dir, run, out, compare) if compare else None
    # null under leave-one-out: the decay head needs a known end of observation (split=time)
    out["decay"] = decay_metrics(model, data_dir, manifest["split"]["horizon_days"], max_len, cfg.eval.batch_size)
    out["tags"] = None  # only data with planted interests (synthetic) has a truth to measure tags against
    if (data_dir / "planted").is_dir():
        scorer = ProfileScorer(run_dir, data_dir, settings_from(cfg, manifest["split"]["horizon_days"]))
        out["tags"] = tag_metrics(scorer, data_dir, test_rows)
    out["event_type"] = action_metrics(model, data_dir, max_len, cfg.eval.batch_size, event_types, cfg.train.seed)
    out["throughput"] = {"train_seq_per_s": run.get("train_seq_per_s"),
                         "ingest_rows_per_s": manifest.get("ingest_rows_per_s")}
    (run_dir / "metrics.json").write_text(json.dumps(_clean(out), indent=2))
    return out


def _migration(model, cfg, data_dir: Path, num_items: int, latent_run: str | Path | None) -> tuple[dict | None, set]:
    """(metrics.json["migration"], flagged test users): the run's own model as the latent (vae) or sequence
    model, plus --latent's."""
    latent = model if model.args.arch == "vae" else None
    sequence = None if latent is not None else model
    if latent_run is not None:
        latent = load_latent(latent_run, num_items)
    item_category = item_categories(data_dir, num_items)
    cats = pq.read_table(data_dir / "vocab" / "categories", columns=["category", "category_idx"]).to_pydict()
    names = category_names(cats["category"], cats["category_idx"])
    return migration_metrics(data_dir, cfg.migration, item_category, names, latent=latent, sequence=sequence,
                             batch_size=cfg.eval.batch_size)


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory written by `interest train`, e.g. --run runs/r1")
    p.add_argument("--data", default=None, help="data directory (default: the one the run trained on)")
    p.add_argument("--latent", default=None,
                   help="a run of `interest train --model vae` on the same data: its posteriors give the latent "
                        "interest-migration score, e.g. --latent runs/vae")
    p.add_argument("--compare", action="append", default=[], metavar="RUN",
                   help="an evaluated run on the same data with another item representation, for the ablation table "
                        "(repeatable), e.g. --compare runs/id_only")


def run(args: argparse.Namespace) -> int:
    out = evaluate_run(args.run, args.data, args.latent, args.compare)
    metric = config_from_dict(json.loads((Path(args.run) / "run.json").read_text())["config"]).eval.select
    k = metric.split("@")[1]
    t, b = out["test"]["full"], out["baselines"]["popularity"]["full"]
    print(f"evaluate: test {metric} {t[metric]:.4f} hr@{k} {t[f'hr@{k}']:.4f} (popularity hr@{k} {b[f'hr@{k}']:.4f}) "
          f"-> {Path(args.run) / 'metrics.json'}")
    if out["decay"]:
        d, best = out["decay"], max(out["decay"]["baselines"].items(), key=lambda kv: kv[1]["auc"] or 0)
        print(f"evaluate: decay P(active within {d['horizon_days']:g} days) AUC {d['auc']:.4f} Brier {d['brier']:.4f} "
              f"ECE {d['ece']:.4f} (best baseline {best[0]} AUC {best[1]['auc']:.4f} Brier {best[1]['brier']:.4f})")
    if out["event_type"] and out["event_type"]["macro_auc"] is not None:
        e, tr = out["event_type"], out["event_type"]["baselines"]["transition"]
        print(f"evaluate: next action macro AUC {e['macro_auc']:.4f} log loss {e['log_loss']:.4f} (frequencies "
              f"{e['baseline_log_loss']:.4f}; transition AUC {tr['macro_auc'] or float('nan'):.4f} log loss "
              f"{tr['log_loss']:.4f}) on {e['n_targets']:,} held-out events")
    if out["tags"] and out["tags"]["precision@3"] is not None:
        t, f = out["tags"], out["tags"]["baselines"]["frequency"]
        print(f"evaluate: interest tags precision@3 {t['precision@3']:.4f} against the planted interests of "
              f"{t['n_users']:,} users (most frequent categories {f['precision@3']:.4f})")
    cold, hr = out["cold_start"]["cold_items"], f"hr@{50 if 50 in out['protocol']['k'] else max(out['protocol']['k'])}"
    if cold["users"]:
        s = cold["scorers"]
        names = [n for n in ("content_knn", "recent_popularity", "random") if n in s]
        print(f"evaluate: cold items {hr} {s['model'][hr]:.4f} over {cold['users']:,} users ("
              + ", ".join(f"{n} {s[n][hr]:.4f}" for n in names) + ")")
    if out["migration"] and out["migration"]["auc"]:
        m = out["migration"]
        aucs = ", ".join(f"{k} {v:.4f}" for k, v in m["auc"].items() if v is not None)
        print(f"evaluate: interest migration AUC {aucs} over {m['n_held_out']:,} held-out users ({m['n_migrated']:,} "
              f"migrated; the threshold fitted on other users); {m['n_flagged']:,} of {m['n_users']:,} flagged by "
              f"{m['flag_score']}")
    return 0
