"""`interest demo`: the whole product on the embedded default, on synthetic data.

generate -> Spark local[*] ETL -> local Ray, 2 workers, DeepSpeed ZeRO-2 on the CPU accelerator -> evaluate ->
report -> export. Pseudonymizes with the public insecure demo key (announced), which is fine for synthetic users.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


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


def run(args: argparse.Namespace) -> int:
    from interest import evaluate, export, generate, report
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

    synth, data, run_dir = out / "synthetic", out / "data", out / "run"
    step("generate", lambda: generate.generate(synth, users=args.users, items=args.items, days=60,
                                               events=args.events, seed=7))
    etl_args = argparse.Namespace(input=str(synth), format="synthetic", output=str(data), items=None,
                                  column_map=None, ts_unit="auto", sep=None, split=None, cutoff=None,
                                  horizon_days=None, max_len=None, config=args.config, overrides=args.overrides,
                                  hmac_key_file=None, allow_insecure_demo_key=True, master=None)
    step("etl", lambda: etl.run(etl_args))
    train_args = argparse.Namespace(data=str(data), output=str(run_dir), model=args.model, workers=2, zero_stage=2,
                                    epochs=args.epochs, max_failures=None, config=args.config,
                                    overrides=args.overrides, address=None)
    step("train", lambda: train.run(train_args))
    step("evaluate", lambda: evaluate.run(argparse.Namespace(run=str(run_dir), data=None)))
    step("report", lambda: report.write_report(run_dir))
    step("export", lambda: export.run(argparse.Namespace(run=str(run_dir), output=str(out / "export"), top_k=20,
                                                          segments=8)))
    print("demo: " + ", ".join(f"{k} {v:.0f}s" for k, v in stamps.items()) + f"; total {time.time() - t0:.0f}s")
    print(f"report: {run_dir / 'report.html'}")
    return 0
