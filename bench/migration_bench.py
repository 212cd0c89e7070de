"""Interest migration against the migrations the synthetic generator planted: the latent (Mult-VAE), sequence and
category Jensen-Shannon drift scores, the migrated flag and the estimated migration time.

Runs the product on the decay bench's synthetic data and time split (bench/product.py): `interest etl`, then per
training seed `interest train --config tiny-cpu` (SASRec), `interest train --model vae --config tiny-cpu` and
`interest evaluate --run RUN --latent VAE_RUN` (metrics.json["migration"]: AUC, flag precision / recall / F1 and
the migration time on the held-out half of the users, the flag's threshold fitted on the other half; see
drift.fitting_users). Then, on the first seed's models:

* the settings sweep on the FITTING users' validation rows (drift.fitting_users; drift_valid/: histories up to
  cutoff - horizon, truth = a planted migration inside that history), never the held-out users the figures above
  are measured on: migration.window_days in {7, 14, 21, 30} x migration.divergence in {w2, sym_kl}, and
  model.vae_categories off / on (a second vae run) at each window; the defaults are the best of these;
* for information, the change-point variant of both detectors on the held-out test users: the largest divergence
  between the bags before and after any day boundary of the history (at least 2 events each side), not the fixed
  early / recent windows.

    .venv/bin/python bench/migration_bench.py [--seeds 42 1 7]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from product import SYNTHETIC, SYNTHETIC_CUTOFF, SYNTHETIC_HORIZON_DAYS, cli  # noqa: E402

PRESET = "tiny-cpu"
WINDOWS = (7.0, 14.0, 21.0, 30.0)


def scored(data: Path, vae_run: Path, window_days: float, divergence: str) -> tuple[float, int]:
    """(AUC of the latent score, users) on the fitting users' drift_valid rows for one setting."""
    from interest.migration_scores import DriftScorer, labels, read_drift_split, truth_times
    from interest_core import drift
    from interest_core.binary import auc
    from interest_core.contract import item_categories
    from interest_core.migration_config import MigrationConfig
    from ray_train.models.saved import load_model

    vae, _ = load_model(vae_run)
    rows = read_drift_split(data, "valid")
    cfg = MigrationConfig(window_days=window_days, divergence=divergence)
    got = DriftScorer(item_categories(data, vae.args.num_items), cfg, latent=vae).score(rows)
    idx = got["windows"].rows
    fit = drift.fitting_users([rows["user_id"][i] for i in idx])
    y = labels(rows, idx[fit], truth_times(data))
    return auc(got["latent"][fit], y), len(y)


def change_point(data: Path, vae_run: Path) -> dict:
    """Held-out test users' AUC of max over day boundaries of W2 (latent) and JS (categories) between the bags
    before and after."""
    from interest.migration_scores import DriftScorer, labels, read_drift_split, truth_times
    from interest_core import drift
    from interest_core.binary import auc
    from interest_core.contract import item_categories
    from interest_core.migration_config import MigrationConfig
    from ray_train.models.saved import load_model

    vae, _ = load_model(vae_run)
    ic = item_categories(data, vae.args.num_items)
    rows = read_drift_split(data, "test")
    scorer = DriftScorer(ic, MigrationConfig(), latent=vae)
    idx = scorer.score(rows)["windows"].rows
    idx = idx[~drift.fitting_users([rows["user_id"][i] for i in idx])]
    y = labels(rows, idx, truth_times(data))
    bags, owner, _ = scorer.candidate_splits(rows, idx)  # the migration time's candidates
    js = [drift.js_divergence(drift.category_distribution(before, ic), drift.category_distribution(after, ic))
          for before, after in zip(bags[0::2], bags[1::2])]
    m, lv = scorer.posteriors(bags)
    w2 = drift.gaussian_w2(m[0::2], lv[0::2], m[1::2], lv[1::2])
    best_w2, best_js = np.zeros(len(y)), np.zeros(len(y))
    np.maximum.at(best_w2, owner, w2)
    np.maximum.at(best_js, owner, np.asarray(js))
    return {"latent": auc(best_w2, y), "category_js": auc(best_js, y), "n_users": len(y)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    p.add_argument("--out", default="/tmp/interest_migration_bench")
    a = p.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from interest.synthetic import generate

    generate(out / "synthetic", **SYNTHETIC)
    data = out / "data"
    cli("etl", "--input", str(out / "synthetic"), "--format", "synthetic", "--output", str(data), "--config", PRESET,
        "--allow-insecure-demo-key", "--split", "time", "--cutoff", SYNTHETIC_CUTOFF, "--horizon-days",
        str(SYNTHETIC_HORIZON_DAYS))
    from interest_core.data_versions import resolve_data_dir

    version = Path(resolve_data_dir(data))  # the published version the pointer names: what the readers below read
    per_seed = {}
    for seed in a.seeds:
        run, vae = out / f"run_{seed}", out / f"vae_{seed}"
        cli("train", "--data", str(data), "--output", str(run), "--config", PRESET, "--set", f"train.seed={seed}")
        cli("train", "--data", str(data), "--output", str(vae), "--model", "vae", "--config", PRESET, "--set",
            f"train.seed={seed}")
        cli("evaluate", "--run", str(run), "--latent", str(vae))
        m = json.loads((run / "metrics.json").read_text())["migration"]
        per_seed[seed] = m
        print(f"seed {seed}: AUC " + ", ".join(f"{k} {v:.4f}" for k, v in m["auc"].items())
              + f"; flag precision {m['precision']:.4f} recall {m['recall']:.4f} F1 {m['f1']:.4f} (threshold "
              f"{m['threshold']['value']:.4f} fitted on {m['threshold']['n_fit_users']} users); time within 7 days "
              f"{m['time_within_7d']:.4f} of {m['n_true_positives']} true positives; {m['n_held_out']} held-out "
              f"users of {m['n_users']}, {m['n_migrated']} migrated", flush=True)
    for key in ("latent", "sequence", "category_js"):
        v = [m["auc"][key] for m in per_seed.values()]
        print(f"mean AUC {key}: {np.mean(v):.4f} (spread {max(v) - min(v):.4f})")
    for key in ("precision", "recall", "f1", "time_within_7d"):
        v = [m[key] for m in per_seed.values()]
        print(f"mean {key}: {np.mean(v):.4f} (spread {max(v) - min(v):.4f})")
    first = a.seeds[0]
    vae = out / f"vae_{first}"
    print("validation sweep (latent AUC on the fitting users' drift_valid rows):")
    sweep = {}
    for wd in WINDOWS:
        for div in ("w2", "sym_kl"):
            sweep[f"window_days={wd:g} divergence={div}"] = got = scored(version, vae, wd, div)
            print(f"  window_days={wd:g} divergence={div}: {got[0]:.4f} ({got[1]} users)", flush=True)
    cats = out / f"vae_{first}_categories"
    cli("train", "--data", str(data), "--output", str(cats), "--model", "vae", "--config", PRESET, "--set",
        f"train.seed={first}", "--set", "model.vae_categories=true")
    for wd in WINDOWS:
        for name, run in (("vae_categories=false", vae), ("vae_categories=true", cats)):
            sweep[f"{name} window_days={wd:g}"] = got = scored(version, run, wd, "w2")
            print(f"  {name} window_days={wd:g} (w2): {got[0]:.4f}", flush=True)
    cp = change_point(version, vae)
    print(f"change point (held-out test users, information only): latent {cp['latent']:.4f}, category_js "
          f"{cp['category_js']:.4f} over {cp['n_users']} users")
    (out / "migration_bench.json").write_text(json.dumps({"per_seed": per_seed, "sweep": sweep,
                                                          "change_point": cp}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
