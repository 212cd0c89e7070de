"""Train an interest model on ETL shards with Ray Train + Ray Data + DeepSpeed.

    interest train --data DIR --output RUN [...]                     # starts a local Ray instance
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m ray_train.train --data DIR --output RUN

Resubmitting with the same --output resumes from the run's latest checkpoint.
"""
from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import asdict
import json
import os
import shutil
import sys
import time
from pathlib import Path

from interest_core import storage
from interest_core.config import Config, build_config, load_config, redacted
from interest_core.data_versions import PREFIX, add_reference, local_data_dir, resolve_data_dir
from interest_core.contract import data_fingerprint, load_manifest, vocab_fingerprint
from interest_core.modelargs import ARCHS, count_params, model_args_for_data
from ray_train import checkpoints
from ray_train.data import train_dataset
from ray_train.loop import Job, select_key, steps_per_epoch, train_loop_per_worker
from ray_train.local_instance import own_instance
from ray_train.logs import quiet_libraries, ray_init_kwargs, train_log_level
from ray_train.progress import driver_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="ETL output directory or URI (its current version is read), e.g. --data out/data or "
                        "--data s3://bucket/data")
    p.add_argument("--output", required=True,
                   help="run directory or URI (s3://, gs://, hdfs://); rerun the same to resume, e.g. --output "
                        "runs/r1")
    p.add_argument("--model", default=None, choices=list(ARCHS),
                   help="model family: sasrec / hstu (sequence) or vae (Mult-VAE over bags), e.g. --model hstu")
    p.add_argument("--workers", type=int, default=None, help="Ray Train workers (DeepSpeed ranks), e.g. --workers 2")
    p.add_argument("--zero-stage", type=int, default=None, choices=[0, 1, 2, 3], help="ZeRO stage, e.g. --zero-stage 3")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (early stopping may end sooner), e.g. --epochs 5")
    p.add_argument("--max-failures", type=int, default=None,
                   help="worker-group restarts from the latest checkpoint (-1 = unlimited), e.g. --max-failures 2")
    p.add_argument("--config", default=None, help="preset name or YAML file, e.g. --config tiny-cpu")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="override a config key, e.g. --set train.lr=0.002 (repeatable)")
    p.add_argument("--force", action="store_true",
                   help="train on from a finished run's latest checkpoint (a finished run is final without it), "
                        "e.g. --force --epochs 20")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: $RAY_ADDRESS, else a new local instance), e.g. --address auto")


def config_from_args(args: argparse.Namespace, manifest: dict) -> Config:
    data_sets = [o for o in args.overrides if o.strip().startswith("data.")]
    if data_sets:
        raise ValueError(f"--set {data_sets[0]}: data.* settings are the ETL's; a run inherits them from the data's "
                         f"manifest. Rerun `interest etl ... --set {data_sets[0]}` and train on its output")
    overrides = list(args.overrides)
    for flag, key in [("model", "model.arch"), ("workers", "train.workers"), ("zero_stage", "train.zero_stage"),
                      ("epochs", "train.epochs"), ("max_failures", "train.max_failures")]:
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    # The data section is the ETL's; the run inherits it so the checkpoint records what built the shards.
    cfg = load_config(args.config, overrides)
    return cfg.model_copy(update={"data": type(cfg.data).model_validate(manifest["config"]["data"])})


def init_ray(cfg: Config, address: str | None) -> bool:
    """Connects to a cluster or starts a local instance; returns True when this process started Ray (an instance this
    process already joined, e.g. `interest pipeline`'s or a test session's, is used as it is)."""
    import ray

    if ray.is_initialized():
        quiet_libraries()
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray Train 2.60 patches print() in workers to tee into its logger, which shows every progress line twice.
    # DS_ACCELERATOR is not forced here: each worker picks cpu only when it has no CUDA device (engine.py).
    env = {"TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    if address:
        ray.init(address=address, **ray_init_kwargs(env, local=False))
        quiet_libraries()
        return False
    # On small machines training workers would take every CPU and Ray Data's read tasks would starve (seen:
    # 2 workers on 2 cores hang), so the local instance gets more logical CPUs than there are cores.
    need = cfg.train.workers * cfg.train.cpus_per_worker + 2
    num_cpus = cfg.train.ray_num_cpus or int(max(os.cpu_count() or 1, need))
    # The dashboard process serves Ray's State API; without it Ray Train 2.60's PlacementGroupCleaner fails its
    # once-a-second controller check and logs a warning each time. It listens on loopback only.
    ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
             **ray_init_kwargs(env, local=True))
    quiet_libraries()
    return True


def build_trainer(cfg: Config, data_dir: Path, run_dir: Path, manifest: dict, progress_board: str | None = None,
                  data_at: str | Path | None = None, run_at: str | Path | None = None):
    """data_dir / run_dir: local directories; data_at / run_at: where the data version and the run live when that
    is shared storage (a URI): Ray Data reads the train shards from there, Ray Train writes checkpoints there."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    # Ray Train's controller polls the worker group every 2 s by default: a finished run waits up to that long to be
    # seen, a few seconds of every run. A poll is one small call per worker; the environment's setting wins.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    # Ray Data progress bars interleave with training logs on the driver; the progress lines say enough.
    ray.data.DataContext.get_current().enable_progress_bars = False
    use_gpu = cfg.train.use_gpu if cfg.train.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
    data_at, run_at = data_at or data_dir, run_at or run_dir
    train_ds = train_dataset(data_at, cfg, manifest["rows"]["train"], cfg.train.workers)
    job = Job(config=cfg.to_dict(), data_dir=str(data_at), run_dir=str(run_dir), manifest=manifest,
              progress_board=progress_board, text_cache=str(text_cache_dir(cfg, run_dir)),
              data=data_identity(data_dir, manifest), local_data=str(data_dir))
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=job.__dict__,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.train.workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cfg.train.cpus_per_worker}),
        run_config=RunConfig(
            **run_storage(run_at),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints,
                                               checkpoint_score_attribute=select_key(cfg),
                                               checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            logging_config=LoggingConfig(log_level=train_log_level())),
        datasets={"train": train_ds},
    )


def run_storage(run_at: str | Path) -> dict:
    """RunConfig's name and storage: a local parent directory, or the URI's filesystem (storage.py: the endpoint and
    credentials of the environment) and the path in it."""
    if not storage.is_remote(run_at):
        return {"name": Path(run_at).name, "storage_path": str(Path(run_at).parent)}
    fs, path = storage.filesystem_and_path(run_at)
    return {"name": storage.basename(run_at), "storage_path": path.rsplit("/", 1)[0], "storage_filesystem": fs}


def text_cache_dir(cfg: Config, run_dir: Path) -> Path:
    return Path(cfg.train.text_cache_dir) if cfg.train.text_cache_dir else run_dir / "text_cache"


def prepare_content(cfg: Config, data_dir: Path, run_dir: Path, manifest: dict) -> dict | None:
    """The content tower's inputs that need a job of their own: the item text embeddings (ray_train/text_embed.py),
    encoded once into the cache the workers read. None when the model reads no item features."""
    features = cfg.model.item_features
    if not features:
        return None
    info: dict = {"item_features": list(features)}
    if "text" in features:
        from ray_train.text_embed import ensure_text_embeddings

        t0 = time.time()
        _, text = ensure_text_embeddings(data_dir, text_cache_dir(cfg, run_dir), manifest["vocab"]["num_items"])
        info["text"] = text | {"seconds": round(time.time() - t0, 3)}
        print(f"train: item text embeddings ({text['model']}): {text['items_with_text']:,} items, "
              f"{text['encoded']:,} encoded, {text['reused']:,} from the cache ({info['text']['seconds']:.0f}s)",
              flush=True)
    return info


def finalize(result, cfg: Config, data_dir: Path, run_dir: Path, manifest: dict, t0: float, started: str,
             content: dict | None = None, data_at: str | Path | None = None, run_at: str | Path | None = None) -> dict:
    """Copies the best checkpoint's model files to RUN/model and writes run.json, history.json, steps.json."""
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    key = select_key(cfg)
    kept = [cm for cm in result.best_checkpoints if not Path(cm[0].path).is_dir() or checkpoints.problem(cm[0].path)
            is None] or result.best_checkpoints
    best = max(kept, key=lambda cm: cm[1].get(key, float("-inf")))
    model_dir = run_dir / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True)
    with best[0].as_directory() as d:
        for name in ("model.pt", "meta.json"):
            shutil.copy2(Path(d) / name, model_dir / name)
    last = result.metrics
    with result.checkpoint.as_directory() as d:  # the latest checkpoint holds the whole history
        for name in ("history.json", "steps.json"):
            shutil.copy2(Path(d) / name, run_dir / name)
    history = json.loads((run_dir / "history.json").read_text())
    meta = json.loads((model_dir / "meta.json").read_text())
    args = model_args_for_data(cfg, manifest)
    refit = _refit_decay(cfg, data_dir, run_dir, manifest) if args.decay_loss_weight > 0 else None
    run = {
        "data_dir": str(data_at or data_dir), "model": cfg.model.arch, "config": redacted(cfg.to_dict()),
        "num_params": count_params(args),
        "world_size": cfg.train.workers, "zero_stage": cfg.train.zero_stage, "loss": args.loss,
        "wall_time_s": time.time() - t0, "started": started,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "best_epoch": meta["epoch"], "best_step": meta["step"], "validations": len(history),
        "selection": {"protocol": cfg.eval.select_protocol, "metric": cfg.eval.select},
        "best_valid_score": best[1].get(key),
        "best_checkpoint": str(storage.join(run_at or run_dir, Path(best[0].path).name)),
        "stopped_early": bool(last.get("stopped_early")), "epochs_run": history[-1]["epoch"] if history else 0,
        "steps_run": history[-1]["step"] if history else 0,
        "global_batch": cfg.train.micro_batch_size * cfg.train.grad_accum * cfg.train.workers,
        # Rows that carry no loss, added so the equal split across ranks drops no training row.
        "train_rows_padded": -manifest["rows"]["train"] % cfg.train.workers,
        "train_seq_per_s": history[-1]["seq_per_s"] if history else None,
        "manifest": {k: manifest[k] for k in ("counts", "rows", "vocab", "split")},
        "defaults_used": _defaults_used(cfg),
        "decay_refit": refit,
        "content": content,
        "data": data_identity(data_dir, manifest),
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return run


def _refit_decay(cfg: Config, data_dir: Path, run_dir: Path, manifest: dict) -> dict | None:
    """Refits the survival head of RUN/model on its frozen encoder (ray_train/decay_refit.py) and saves it."""
    if cfg.model.decay_refit_epochs == 0:
        return None
    import torch

    from ray_train.decay_refit import refit_decay_head
    from ray_train.models.saved import load_model

    model, _ = load_model(run_dir)
    t0 = time.time()
    try:
        got = refit_decay_head(model, data_dir, cfg, manifest["split"]["horizon_days"])
    except Exception as exc:  # the trained model stands; the run records why its head was not refitted
        print(f"[interest] decay head refit failed, keeping the jointly trained head: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"}
    torch.save(model.state_dict(), run_dir / "model" / "model.pt")
    got["seconds"] = round(time.time() - t0, 1)
    ll, auc = got["valid_log_loss"], got["valid_auc"]
    print(f"[interest] decay head refitted on the chosen encoder ({got['positions']:,} positions): {got['chosen']} "
          f"chosen; decay_valid log loss {ll['joint']:.4f} -> {ll['refit']:.4f}, "
          f"AUC {auc['joint'] or float('nan'):.4f} -> {auc['refit'] or float('nan'):.4f} ({got['seconds']:.0f}s)",
          flush=True)
    return got


# Training knobs whose defaults the report names when a run leaves them untouched.
REPORTED_DEFAULTS = ("dropout", "lr", "lr_schedule", "warmup_ratio", "warmup_max_steps", "min_lr_ratio", "epochs",
                     "early_stopping_patience", "weight_decay", "grad_clip", "dim", "n_layers", "n_heads", "loss",
                     "ffn_mult", "ffn_activation", "norm", "scale_embeddings", "adam_beta2", "val_every_steps")


def _defaults_used(cfg: Config) -> dict:
    """The training knobs left at their built-in defaults (the report states them)."""
    defaults = build_config({"model": {"arch": cfg.model.arch}}).to_dict()
    used = {}
    for section in ("model", "train"):
        for k, v in cfg.to_dict()[section].items():
            if defaults[section].get(k) == v and k in REPORTED_DEFAULTS:
                used[f"{section}.{k}"] = v
    return used


def data_identity(data_dir: Path, manifest: dict) -> dict:
    """What the run trained on, as run.json and every checkpoint record it (interest_core.contract)."""
    return {"fingerprint": data_fingerprint(manifest), "vocab_fingerprint": vocab_fingerprint(data_dir, manifest)}


def check_unfinished(run_dir: Path, force: bool) -> None:
    """A finished run (run.json written) is final: resubmitting it would train more steps and replace its model."""
    done = run_dir / "run.json"
    if done.exists() and not force:
        run = json.loads(done.read_text())
        raise ValueError(f"{run_dir} holds a finished run ({run.get('steps_run')} steps, best valid "
                         f"{run.get('selection', {}).get('metric')} {run.get('best_valid_score')}, finished "
                         f"{run.get('finished')}); a finished run is final. Use a new --output, or add --force to "
                         f"train on from its latest checkpoint (e.g. --force --epochs N)")


def check_resumable(run_dir: Path, cfg: Config, manifest: dict, data_dir: Path | None = None) -> None:
    """A run directory with checkpoints resumes; refuse it when they hold another model (a changed preset, backbone
    or vocabulary), were trained on other data, or by another world size or ZeRO stage (DeepSpeed's partitioned
    optimizer state would not load), naming what differs and the fix."""
    latest = checkpoints.latest_complete(run_dir)
    if latest is None:
        return
    meta = json.loads((latest / "meta.json").read_text())
    old = meta["model_args"]
    new = json.loads(json.dumps(asdict(model_args_for_data(cfg, manifest))))  # as meta.json holds it: tuples are lists
    diff = {k: f"{old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v}
    for key, now in (("world_size", cfg.train.workers), ("zero_stage", cfg.train.zero_stage)):
        if key in meta and meta[key] != now:
            diff[key] = f"{meta[key]!r} -> {now!r}"
    if data_dir is not None and meta.get("data"):
        ident = data_identity(data_dir, manifest)
        for key, label in (("vocab_fingerprint", "item vocabulary"), ("fingerprint", "data")):
            if meta["data"].get(key) != ident[key]:
                diff[label] = f"{meta['data'].get(key, '')[:12]} -> {ident[key][:12]}"
    if diff:
        changes = ", ".join(f"{k}: {d}" for k, d in diff.items())
        raise ValueError(f"{run_dir} holds checkpoints of another run ({changes}); resuming needs the same model, "
                         f"data, workers and ZeRO stage. Use a new --output, or delete {run_dir}")


def run(args: argparse.Namespace) -> int:
    data_at, run_at = resolve_data_dir(args.data), storage.normalize(args.output)
    data_dir = local_data_dir(data_at)  # a remote version: checked finished, read through a local copy
    # A remote run is worked on in a local copy (what resuming and the checks read; run.json, model/ uploaded at the
    # end, run.json last); Ray Train writes its checkpoints to the remote run itself.
    work = storage.WorkingCopy(run_at) if storage.is_remote(run_at) else None
    run_dir = work.open() if work else run_at
    manifest = load_manifest(data_dir)
    cfg = config_from_args(args, manifest)
    model_args_for_data(cfg, manifest)  # every model argument checked before Ray starts
    steps_per_epoch(manifest["rows"]["train"], cfg.train.workers, cfg)  # and the batch arithmetic
    check_resumable(run_dir, cfg, manifest, data_dir)  # another model or data: the first thing to say
    check_unfinished(run_dir, args.force)
    if cfg.train.mlflow_tracking_uri:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ValueError("train.mlflow_tracking_uri is set but mlflow is not installed: "
                             "pip install 'interest-trainer[mlflow]' (or unset the key)") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    if storage.basename(data_at).startswith(PREFIX):  # keeps this version from being deleted by a later ETL
        add_reference(data_at, run_at)
    t0, started = time.time(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with own_instance(init_ray(cfg, args.address)):  # a local instance it started: shut down at the end
        try:
            content = prepare_content(cfg, data_dir, run_dir, manifest)
            n_steps, _ = steps_per_epoch(manifest["rows"]["train"], cfg.train.workers, cfg)
            with driver_progress(cfg.train.progress, n_steps * cfg.train.epochs) as board:
                result = build_trainer(cfg, data_dir, run_dir, manifest, board, data_at, run_at).fit()
            info = finalize(result, cfg, data_dir, run_dir, manifest, t0, started, content, data_at, run_at)
            if work:
                work.save(last=("run.json",))
        finally:
            checkpoints.clear_staging(run_dir)  # a killed worker's staging on this node
    print(f"train: best valid {cfg.eval.select} {info['best_valid_score']:.4f} at step {info['best_step']} (epoch "
          f"{info['best_epoch']:.2f}; {info['steps_run']} steps, {info['epochs_run']:.2f} epochs, "
          f"{info['wall_time_s']:.0f}s) -> {run_at}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_train.train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
