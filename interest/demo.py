"""`interest demo`: the whole product on the embedded default, on synthetic data.

generate -> Spark local[*] ETL (time split; a tenth of the items held out of training) -> local Ray, 2 workers,
DeepSpeed ZeRO-2 on the CPU accelerator: the sequence model (--model) with the content tower (item category, brand,
price bucket and title text through the packaged all-MiniLM-L6-v2; cold start) and the Mult-VAE latent interest
model (interest migration) -> evaluate -> export -> report. Pseudonymizes with the public insecure demo key
(announced), which is fine for synthetic users.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

START, DAYS, HORIZON_DAYS = "2024-01-01", 60, 7
DEMO_ITEM_FEATURES = ("category", "brand", "price", "text")
DEMO_COLD_ITEMS = 0.1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="directory for everything the demo writes, e.g. --out /tmp/demo")
    p.add_argument("--users", type=int, default=3000, help="synthetic users, e.g. --users 5000")
    p.add_argument("--items", type=int, default=1500, help="synthetic items, e.g. --items 2000")
    p.add_argument("--events", type=int, default=150_000, help="synthetic events, e.g. --events 300000")
    p.add_argument("--config", default="tiny-cpu", help="preset for ETL and training, e.g. --config base")
    p.add_argument("--model", default="sasrec", choices=["sasrec", "hstu"], help="backbone, e.g. --model hstu")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default: the preset's), e.g. --epochs 3")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="config override for ETL and training, e.g. --set train.lr=0.002")


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    from interest.cli import parse_command

    return parse_command(command, argv)


def run(args: argparse.Namespace) -> int:
    from interest import evaluate, export, report
    from interest.synthetic import generate
    from ray_train import train
    from spark_jobs import etl

    out = Path(args.out).resolve()
    t0 = time.time()
    stamps = {}

    def step(name, fn):
        s = time.time()
        print(f"== demo: {name}", flush=True)
        fn()
        stamps[name] = time.time() - s

    synth, data, run_dir, vae_dir = out / "synthetic", out / "data", out / "run", out / "vae"
    # A fresh run each time: `interest train` would resume an earlier demo's checkpoints (of another model, maybe).
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(vae_dir, ignore_errors=True)
    shutil.rmtree(out / "export", ignore_errors=True)
    if (data / "_SUCCESS").exists():  # an earlier version's unversioned data directory: the demo owns it
        shutil.rmtree(data)
    sets = [x for o in args.overrides for x in ("--set", o)]
    step("generate", lambda: generate(synth, users=args.users, items=args.items, days=DAYS, events=args.events,
                                      seed=7, start=START))
    # A time split, so decay has an end of observation: train up to cutoff - horizon, validate on the horizon
    # before the cutoff, test on the horizon after it; the data's last `horizon` days stay unseen.
    cutoff = (dt.date.fromisoformat(START) + dt.timedelta(days=DAYS - 2 * HORIZON_DAYS)).isoformat()
    split = ["--split", "time", "--cutoff", cutoff, "--horizon-days", str(HORIZON_DAYS)]
    # The zero-shot protocol: a tenth of the items lose every training event, so some test targets are items the
    # model never saw in training and only their content can rank (the report's Cold start section).
    split += ["--cold-items", str(DEMO_COLD_ITEMS)]
    # Catalog items that no event mentions join the vocabulary too: the content tower ranks them by content alone.
    split += ["--set", "data.catalog_items=true"]
    step("etl", lambda: etl.run(_parse("etl", ["--input", str(synth), "--format", "synthetic", "--output", str(data),
                                               "--config", args.config, "--allow-insecure-demo-key", *split, *sets])))
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    # The content tower: new items (the synthetic catalog's late arrivals) are ranked by their content.
    # ... and user side features (the generator's users.parquet, which the ETL joins by pseudonym): a user with
    # few events is also scored from age, gender and region.
    content = ["--set", f"model.item_features=[{','.join(DEMO_ITEM_FEATURES)}]",
               "--set", f"train.text_cache_dir={out / 'text_cache'}", "--set", "model.user_features=true"]
    step("train", lambda: train.run(_parse("train", ["--data", str(data), "--output", str(run_dir), "--model",
                                                     args.model, "--workers", "2", "--zero-stage", "2", "--config",
                                                     args.config, *epochs, *content, *sets])))
    step("train latent", lambda: train.run(_parse("train", ["--data", str(data), "--output", str(vae_dir), "--model",
                                                            "vae", "--workers", "2", "--zero-stage", "2",
                                                            "--config", args.config, *epochs, *sets])))
    step("evaluate", lambda: evaluate.run(_parse("evaluate", ["--run", str(run_dir), "--latent", str(vae_dir)])))
    step("export", lambda: export.run(_parse("export", ["--run", str(run_dir), "--output", str(out / "export"),
                                                       "--latent", str(vae_dir)])))
    step("report", lambda: report.write_report(run_dir))
    print("demo: " + ", ".join(f"{k} {v:.0f}s" for k, v in stamps.items()) + f"; total {time.time() - t0:.0f}s")
    print(f"report: {run_dir / 'report.html'}")
    return 0
