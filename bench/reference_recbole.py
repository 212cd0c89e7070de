"""The reference trainer's figures on MovieLens-100K: RecBole 1.2.1's SASRec, GRU4Rec and Pop under this project's
quality protocol (bench/quality_bench.py, docs/training-defaults.md), measured by this script, not quoted.

    .venv/bin/python bench/reference_recbole.py [--models GRU4Rec SASRec] [--seeds 42 1 7] [--epochs 300]
                                                [--workdir /tmp/recbole_reference]

RecBole needs older numpy (< 2: it aliases np.float_), scipy, pandas and scikit-learn than this project, so it runs
in its own virtual environment, .cache/recbole-venv (git-ignored), built on first use from the pins below with the
torch release that requirements.lock pins (the CPU wheel on this machine, in the same pip call as the rest, as the
Makefile installs the project). A stamp file holding the pins makes a second run start at once.

Protocol, as this project's quality bench:
- data: .cache/public/ml-100k/ml-100k.inter (`make .cache/public/ml-100k/ml-100k.inter`), every rating an
  implicit interaction (the rating column is not loaded), no filtering. RecBole holds float fields as float32,
  which cannot tell apart Unix timestamps a minute apart, so the copy it reads (WORKDIR/dataset/) has each timestamp
  replaced by its rank among the distinct timestamps: the same order and the same ties, held exactly. Ties keep
  the file's order (RecBole sorts with a stable argsort, recbole/data/interaction.py Interaction.sort), as ours do.
  The copy is not named ml-100k: for that name RecBole reads the file bundled in its wheel, whatever data_path says
  (recbole/config/configurator.py _set_default_parameters);
- split: leave-one-out by time (eval_args LS valid_and_test, order TO): each user's last event is the test
  target, the one before it the validation target; a training row is a prefix of at most 50 events (max_len 50)
  and its next event, one per event but each user's first (the training targets counted in targets/s);
- ranking: full ranking over all items, history NOT masked. RecBole masks nothing for sequential models
  already: its FullSortEvalDataLoader builds no history for them (recbole/data/dataloader/general_dataloader.py,
  `if not self.is_sequential`) and Trainer._full_sort_batch_eval masks only a history it is given. For Pop, a
  general model, it would mask the training items; the trainer here drops that mask, so all three models are
  scored under the same `full` protocol;
- models: SASRec max_len 50, hidden 64, 2 layers, 2 heads, 4x GELU feed-forward, dropout 0.5, CE loss (RecBole's
  defaults but the sizes); GRU4Rec embedding 64, 2 GRU layers of width 64, dropout 0.3, CE loss (the sizes of this
  project's GRU; RecBole's own default is 1 layer of 128); batch 2048, Adam lr 0.001 (RecBole's defaults);
- selection: validation NDCG@10 after every epoch, early stopping after 10 epochs without a better one (RecBole's
  stopping_step), the best epoch's weights scored once on the test targets. Pop is deterministic: one run, with
  batches of one row, since its calculate_loss (`item_cnt[item] += 1`) counts an item once per batch however often
  the batch holds it: with RecBole's batch of 2048 its counts are not the items' training frequencies.

Each finished (model, seed) is kept as WORKDIR/results/MODEL-seedS-epochsE.json and skipped on a rerun, so a long
run can be stopped and resumed. Printed per model: mean +- std over seeds of test NDCG@10 and HR@10, the best
epoch, seconds per training epoch, training targets per second and the time to the best epoch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / ".cache" / "public" / "ml-100k" / "ml-100k.inter"
VENV = REPO / ".cache" / "recbole-venv"
DATASET = "ml-100k-ranked"  # WORKDIR/dataset/DATASET/DATASET.inter (see prepare_dataset)
MODELS = ("GRU4Rec", "SASRec")
BASELINE = "Pop"
# RecBole 1.2.1 and its dependencies, resolved together on Python 3.11 (torch comes from requirements.lock).
PINS = (
    "recbole==1.2.1", "numpy==1.26.4", "scipy==1.13.1", "pandas==2.2.3", "scikit-learn==1.5.2", "ray==2.6.3",
    "setuptools==80.10.2",  # ray 2.6 imports pkg_resources, gone from setuptools 81
    "absl-py==2.5.1", "aiosignal==1.4.0", "attrs==26.1.0", "certifi==2026.10.19.post1", "charset-normalizer==3.5.3",
    "click==8.5.1", "cloudpickle==3.1.3", "colorama==0.4.4", "colorlog==4.7.2", "filelock==4.3.2",
    "frozenlist==1.8.0", "fsspec==2026.9.0", "grpcio==1.85.4", "idna==3.21", "Jinja2==3.1.6", "joblib==1.6.0",
    "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "Markdown==3.11.4", "MarkupSafe==3.0.4",
    "mpmath==1.3.0", "msgpack==1.2.4", "narwhals==2.29.0", "networkx==3.6.1", "packaging==26.4", "pillow==13.0.0",
    "plotly==7.1.0", "protobuf==7.36.2", "psutil==7.2.2", "python-dateutil==4.0.0", "pytz==2026.6",
    "PyYAML==6.0.4", "referencing==0.37.0", "requests==2.34.2", "rpds-py==2026.9.1", "sympy==1.14.0",
    "tabulate==0.10.0", "tensorboard==2.21.0", "tensorboard-data-server==0.7.2", "texttable==1.7.2",
    "thop==0.1.1.post2209072238", "threadpoolctl==3.8.0", "tqdm==4.70.1", "typing_extensions==4.16.0",
    "tzdata==2026.6", "urllib3==2.8.0", "Werkzeug==3.1.9",
)
# The protocol above as RecBole configuration (the worker adds paths, seed and the epoch cap).
COMMON = {
    "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "normalize_all": False,
    "MAX_ITEM_LIST_LENGTH": 50, "train_neg_sample_args": None, "repeatable": True,
    "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
    "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10", "stopping_step": 10,
    "train_batch_size": 2048, "learning_rate": 0.001, "eval_batch_size": 4096,
    "use_gpu": False, "show_progress": False, "worker": 0, "reproducibility": True,
}
PER_MODEL = {
    "SASRec": {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256, "hidden_act": "gelu",
               "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "loss_type": "CE"},
    "GRU4Rec": {"embedding_size": 64, "hidden_size": 64, "num_layers": 2, "dropout_prob": 0.3, "loss_type": "CE"},
    "Pop": {"train_batch_size": 1},  # exact item counts (docstring)
}


def pins(lock: Path = REPO / "requirements.lock") -> list[str]:
    """PINS and the torch release the project pins (one fact in one place: requirements.lock)."""
    torch = [line.strip() for line in lock.read_text().splitlines() if line.strip().startswith("torch==")]
    if len(torch) != 1:
        raise ValueError(f"{lock}: expected one `torch==VERSION` line, found {len(torch)}; pin torch there")
    return [*PINS, torch[0]]


def ensure_venv(venv: Path = VENV) -> Path:
    """The RecBole environment's python, built (about 2 minutes, 1.6 GB) unless its stamp holds these pins."""
    want = "\n".join(pins()) + "\n"
    stamp = venv / ".installed"
    if stamp.is_file() and stamp.read_text() == want:
        return venv / "bin" / "python"
    print(f"building {venv} (RecBole 1.2.1 and its pins; once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    (venv / "requirements.txt").write_text(want)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r",
                    str(venv / "requirements.txt")], check=True)
    stamp.write_text(want)
    return venv / "bin" / "python"


def prepare_dataset(src: Path, workdir: Path) -> Path:
    """WORKDIR/dataset/DATASET/DATASET.inter: user, item and each timestamp's rank among the distinct timestamps
    (float32 holds these exactly), rows in the file's order; returns WORKDIR/dataset (RecBole's data_path)."""
    lines = src.read_text().splitlines()
    cols = lines[0].split("\t")
    need = ("user_id:token", "item_id:token", "timestamp:float")
    if any(c not in cols for c in need):
        raise ValueError(f"{src}: header {cols} lacks one of {list(need)}; remake it with "
                         "`make .cache/public/ml-100k/ml-100k.inter`")
    u, i, t = (cols.index(c) for c in need)
    rows = [line.split("\t") for line in lines[1:] if line]
    rank = {ts: r for r, ts in enumerate(sorted({float(row[t]) for row in rows}))}
    text = "\t".join(need) + "\n" + "".join(f"{row[u]}\t{row[i]}\t{rank[float(row[t])]}\n" for row in rows)
    out = workdir / "dataset" / DATASET / f"{DATASET}.inter"
    if not out.is_file() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".part").write_text(text)
        os.replace(out.with_suffix(".part"), out)
    return workdir / "dataset"


def result_path(workdir: Path, model: str, seed: int, epochs: int) -> Path:
    return workdir / "results" / f"{model}-seed{seed}-epochs{epochs}.json"


def settings(model: str) -> dict:
    """What a result was measured with; a kept result counts only while these are unchanged."""
    return {"dataset": DATASET, **COMMON, **PER_MODEL[model]}


def finished(workdir: Path, model: str, seed: int, epochs: int) -> dict | None:
    """The kept result of (model, seed, epochs), or None when there is none or it was run with other settings."""
    path = result_path(workdir, model, seed, epochs)
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("settings") == settings(model) else None


def runs(models: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """(model, seed) in run order: Pop once (it is deterministic), then each model over every seed."""
    return [(BASELINE, seeds[0])] + [(m, s) for m in models for s in seeds]


def _mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def summary(model: str, results: list[dict]) -> str:
    """One line per model: mean +- std of the test metrics over seeds, best epochs, timings."""
    seeds = " ".join(str(r["seed"]) for r in results)
    line = (f"ml-100k reference {model:7s}: test NDCG@10 {_mean_std([r['test']['ndcg@10'] for r in results])} "
            f"HR@10 {_mean_std([r['test']['hit@10'] for r in results])} ({len(results)} seeds: {seeds})")
    if model == BASELINE:
        return line
    best = ", ".join(str(r["best_epoch"]) for r in results)
    to_best = ", ".join(f"{r['to_best_s']:.0f}" for r in results)
    return (f"{line}; best epoch {best}; {statistics.mean(r['epoch_s'] for r in results):.1f} s/epoch, "
            f"{statistics.mean(r['targets_per_s'] for r in results):,.0f} targets/s; time to best {to_best} s")


def worker(model: str, seed: int, epochs: int, workdir: Path) -> None:
    """One (model, seed) inside the RecBole environment; writes its result file last."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    warnings.filterwarnings("ignore", category=FutureWarning)  # pandas 3 notices from RecBole's own code
    warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    run_dir = Path.cwd()
    config = Config(model=model, dataset=DATASET, config_dict={
        **COMMON, **PER_MODEL[model], "data_path": str(workdir / "dataset"), "seed": seed, "epochs": epochs,
        "checkpoint_dir": str(run_dir / "saved")})
    init_seed(seed, config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(seed, config["reproducibility"])
    net = get_model(model)(config, train._dataset).to(config["device"])

    class Measured(get_trainer(config["MODEL_TYPE"], model)):
        def _train_epoch(self, *args, **kwargs):
            t0 = time.perf_counter()
            loss = super()._train_epoch(*args, **kwargs)
            epoch_s.append(time.perf_counter() - t0)
            return loss

        def _valid_epoch(self, *args, **kwargs):
            t0 = time.perf_counter()
            out = super()._valid_epoch(*args, **kwargs)
            valid_s.append(time.perf_counter() - t0)
            return out

        def _full_sort_batch_eval(self, batched_data):  # history not masked (None already for sequential models)
            interaction, _history, positive_u, positive_i = batched_data
            return super()._full_sort_batch_eval((interaction, None, positive_u, positive_i))

    epoch_s: list[float] = []
    valid_s: list[float] = []
    trainer = Measured(config, net)
    best = [0]

    def on_epoch(epoch_idx: int, valid_score: float) -> None:
        if trainer.cur_step == 0:  # RecBole's early_stopping just took this epoch as the best
            best[0] = epoch_idx + 1
        print(f"{model} seed {seed} epoch {epoch_idx + 1}: train {epoch_s[-1]:.1f}s loss "
              f"{trainer.train_loss_dict[epoch_idx]:.2f}, valid NDCG@10 {valid_score:.4f} ({valid_s[-1]:.1f}s)",
              flush=True)

    trainer.fit(train, valid, verbose=False, saved=True, callback_fn=on_epoch)
    test_result = trainer.evaluate(test, load_best_model=True)
    targets = len(train._dataset)
    mean_epoch = statistics.mean(epoch_s)
    result = {"model": model, "seed": seed, "epochs_cap": epochs, "settings": settings(model),
              "epochs_run": len(epoch_s), "best_epoch": best[0], "valid_ndcg@10": float(trainer.best_valid_score),
              "test": {k: float(test_result[k]) for k in ("ndcg@10", "hit@10")},
              "train_targets": targets, "epoch_s": mean_epoch, "targets_per_s": targets / mean_epoch,
              "to_best_s": sum(epoch_s[:best[0]]) + sum(valid_s[:best[0]]),
              "epoch_s_all": epoch_s, "valid_s_all": valid_s, "test_users": len(test._dataset)}
    out = result_path(workdir, model, seed, epochs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".part").write_text(json.dumps(result, indent=1))
    os.replace(out.with_suffix(".part"), out)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--epochs {text}: give a whole number of epochs >= 1")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help=f"sequence models to run (default: {' '.join(MODELS)}); {BASELINE} always runs once")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 7])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/recbole_reference"),
                   help="results/ (one JSON per finished model and seed, kept for reruns), runs/, dataset/")
    p.add_argument("--epochs", type=_positive, default=300, help="cap on training epochs (RecBole's default 300)")
    p.add_argument("--data", type=Path, default=DATA, help=f"MovieLens-100K ratings (default: {DATA})")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)  # MODEL SEED EPOCHS WORKDIR, in the RecBole venv
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], int(a.worker[1]), int(a.worker[2]), Path(a.worker[3]))
        return 0
    if len(set(a.seeds)) != len(a.seeds):
        p.error(f"--seeds {' '.join(map(str, a.seeds))}: a seed is given twice; give each once")
    if not a.data.is_file():
        print(f"reference_recbole: {a.data} not found. Make it with `make .cache/public/ml-100k/ml-100k.inter` "
              "(bench/public_data.py extracts MovieLens-100K from the recbole wheel).", file=sys.stderr)
        return 2
    workdir = a.workdir.resolve()
    prepare_dataset(a.data, workdir)
    todo = [(m, s) for m, s in runs(a.models, a.seeds) if finished(workdir, m, s, a.epochs) is None]
    python = ensure_venv() if todo else None
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}  # RecBole's checkpoints hold its Config object
    for m, s in runs(a.models, a.seeds):
        if (m, s) in todo:
            run_dir = workdir / "runs" / result_path(workdir, m, s, a.epochs).stem
            run_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", m, str(s), str(a.epochs),
                            str(workdir)], cwd=run_dir, env=env, check=True)
        r = finished(workdir, m, s, a.epochs)
        if r is None:
            raise RuntimeError(f"{m} seed {s}: the run left no result under {workdir / 'results'}; see its output")
        print(f"{m} seed {s}{' (kept from an earlier run)' if (m, s) not in todo else ''}: test NDCG@10 "
              f"{r['test']['ndcg@10']:.4f} HR@10 {r['test']['hit@10']:.4f}, valid NDCG@10 {r['valid_ndcg@10']:.4f}, "
              f"best epoch {r['best_epoch']} of {r['epochs_run']}, {r['epoch_s']:.1f} s/epoch, "
              f"{r['targets_per_s']:,.0f} targets/s ({r['train_targets']} targets), time to best "
              f"{r['to_best_s']:.0f} s", flush=True)
    for m in [BASELINE, *a.models]:
        seeds = a.seeds[:1] if m == BASELINE else a.seeds
        print(summary(m, [finished(workdir, m, s, a.epochs) for s in seeds]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
