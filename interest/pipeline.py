"""`interest pipeline`: ETL -> train -> evaluate -> report -> export as one job, resumable stage by stage.

Locally, or as the entrypoint of one `ray job submit` (the stages that use Ray join the job's cluster through
RAY_ADDRESS, which Ray sets for a job; `--address` overrides). The ETL runs local Spark inside the job, or, with
`--spark-submit SCRIPT`, a spark-submit template (cluster/spark/submit-yarn.sh, submit-k8s.sh) that sends it to a
cluster's master with the executors `interest plan --spark-env` sized.

Everything lands under --out:
  data/            the ETL's versioned shards (published by a marker written last)
  run/             the training run: checkpoints, run.json, metrics.json, report.html, plots/
  export/          profiles and model files
  pipeline.json    the arguments and each finished stage (seconds, finish time), rewritten after every stage

A stage recorded in pipeline.json is not redone when the same command runs again; a stage cut off midway runs
again (training resumes from its latest complete checkpoint). The same --out with other arguments is refused
(naming them); `--redo STAGE` reruns that stage and every later one, `--until STAGE` stops after it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

STAGES = ("etl", "train", "evaluate", "report", "export")
RECORD = "pipeline.json"
# Each argument that changes what the pipeline computes -> the first stage it changes. The others (where Ray and
# Spark run, what to redo) may differ between runs of the same --out.
_AFFECTS = {"config": "etl", "overrides": "etl", "input": "etl", "format": "etl", "hmac_key_file": "etl",
            "etl_args": "etl", "model": "train", "workers": "train", "zero_stage": "train", "epochs": "train",
            "train_args": "train", "export_args": "export"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="base", help="preset or YAML for ETL and training, e.g. --config base")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="config override for ETL and training, e.g. --set train.lr=0.002")
    p.add_argument("--input", required=True, help="raw events (file or directory), e.g. --input /shared/events")
    p.add_argument("--format", required=True, help="input format (as `interest etl --format`), e.g. --format taobao")
    p.add_argument("--out", required=True, help="directory of the whole pipeline, e.g. --out /shared/pipelines/p1")
    p.add_argument("--hmac-key-file", default=None,
                   help="pseudonymization key file (else $INTEREST_HMAC_KEY), e.g. --hmac-key-file /secrets/hmac/key")
    p.add_argument("--model", default=None, help="backbone (default: the config's), e.g. --model hstu")
    p.add_argument("--workers", type=int, default=None, help="training workers (default train.workers), e.g. 8")
    p.add_argument("--zero-stage", type=int, default=None, choices=[0, 1, 2, 3], help="DeepSpeed ZeRO stage, e.g. 3")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default the config's), e.g. --epochs 20")
    p.add_argument("--etl-args", default="", help="more `interest etl` flags, e.g. --etl-args '--split time "
                                                  "--cutoff 2024-02-15 --horizon-days 7'")
    p.add_argument("--train-args", default="", help="more `interest train` flags, e.g. --train-args '--set "
                                                    "model.graph_hops=1'")
    p.add_argument("--export-args", default="", help="more `interest export` flags, e.g. --export-args '--top-k 50'")
    p.add_argument("--spark-submit", default=None,
                   help="run the ETL through this spark-submit template instead of local Spark, e.g. "
                        "--spark-submit cluster/spark/submit-yarn.sh")
    p.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else a local "
                                                   "instance), e.g. --address auto")
    p.add_argument("--redo", default=None, choices=STAGES, help="rerun this stage and every later one, e.g. "
                                                                 "--redo evaluate")
    p.add_argument("--until", default=None, choices=STAGES, help="stop after this stage, e.g. --until etl")


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    from interest.cli import parse_command

    return parse_command(command, argv)


def _identity(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _AFFECTS}


def _load_record(out: Path, args: argparse.Namespace) -> dict:
    """pipeline.json, checked against these arguments: a changed argument is accepted only with a --redo of the
    first stage it changes (or an earlier one), which then records the new arguments."""
    path = out / RECORD
    if not path.exists():
        return {"arguments": _identity(args), "stages": {}}
    record = json.loads(path.read_text())
    changed = {k: (record["arguments"].get(k), v) for k, v in _identity(args).items()
               if record["arguments"].get(k) != v}
    if changed:
        first = min((_AFFECTS[k] for k in changed), key=STAGES.index)
        if args.redo is None or STAGES.index(args.redo) > STAGES.index(first):
            what = "; ".join(f"--{k.replace('_', '-')}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            raise SystemExit(f"interest pipeline: {out} was started with other arguments ({what}). Rerun it with "
                             f"the same arguments to resume, add --redo {first} to redo it from the first stage "
                             f"they change, or give a new --out.")
        record["arguments"] = _identity(args)
    return record


def _save_record(out: Path, record: dict) -> None:
    tmp = out / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out / RECORD)  # atomic: a reader sees the old record or the new one


def etl_argv(args: argparse.Namespace, data: Path) -> list[str]:
    argv = ["--input", args.input, "--format", args.format, "--output", str(data), "--config", args.config]
    if args.hmac_key_file:
        argv += ["--hmac-key-file", args.hmac_key_file]
    argv += [x for o in args.overrides for x in ("--set", o)]
    return argv + shlex.split(args.etl_args)


def _etl(args: argparse.Namespace, out: Path) -> None:
    argv = etl_argv(args, out / "data")
    if not args.spark_submit:
        from spark_jobs import etl

        rc = etl.run(_parse("etl", argv))
        if rc:
            raise SystemExit(f"interest pipeline: the ETL ended with exit code {rc}")
        return
    script = Path(args.spark_submit)
    if not script.exists():
        raise SystemExit(f"interest pipeline: --spark-submit {script} does not exist (the templates are "
                         f"cluster/spark/submit-yarn.sh and submit-k8s.sh)")
    proc = subprocess.run([str(script.resolve()), *argv], env=os.environ.copy())
    if proc.returncode:
        raise SystemExit(f"interest pipeline: the ETL through {script} ended with exit code {proc.returncode}; "
                         f"its output above says why")


def train_argv(args: argparse.Namespace, out: Path) -> list[str]:
    argv = ["--data", str(out / "data"), "--output", str(out / "run"), "--config", args.config]
    for flag, value in (("--model", args.model), ("--workers", args.workers), ("--zero-stage", args.zero_stage),
                        ("--epochs", args.epochs), ("--address", args.address)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + [x for o in args.overrides for x in ("--set", o)] + shlex.split(args.train_args)


def export_argv(args: argparse.Namespace, out: Path) -> list[str]:
    argv = ["--run", str(out / "run"), "--output", str(out / "export")] + shlex.split(args.export_args)
    return argv + (["--address", args.address] if args.address else [])


def _train(args: argparse.Namespace, out: Path) -> None:
    from ray_train import train

    rc = train.run(_parse("train", train_argv(args, out)))
    if rc:
        raise SystemExit(f"interest pipeline: training ended with exit code {rc}")


def _evaluate(args: argparse.Namespace, out: Path) -> None:
    from interest import evaluate

    evaluate.run(_parse("evaluate", ["--run", str(out / "run")]))


def _report(args: argparse.Namespace, out: Path) -> None:
    from interest import report

    report.write_report(out / "run")


def _export(args: argparse.Namespace, out: Path) -> None:
    from interest import export

    export.run(_parse("export", export_argv(args, out)))


WORK = {"etl": _etl, "train": _train, "evaluate": _evaluate, "report": _report, "export": _export}


def run(args: argparse.Namespace) -> int:
    from interest_core import storage

    if storage.is_remote(args.out):
        raise ValueError(f"--out {args.out}: the pipeline keeps its record, data and runs in a local directory; for "
                         f"shared storage run the stages one by one with URIs (README: Shared storage)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    record = _load_record(out, args)
    if args.redo:
        for name in STAGES[STAGES.index(args.redo):]:
            record["stages"].pop(name, None)
        if args.redo in ("etl", "train"):
            shutil.rmtree(out / "run", ignore_errors=True)  # a finished run is final: a redo trains from scratch
        shutil.rmtree(out / "export", ignore_errors=True)
    _save_record(out, record)
    last = STAGES.index(args.until) if args.until else len(STAGES) - 1
    for name in STAGES[:last + 1]:
        if name in record["stages"]:
            print(f"== pipeline: {name} (finished {record['stages'][name]['finished']}; not redone)", flush=True)
            continue
        print(f"== pipeline: {name}", flush=True)
        t0 = time.time()
        WORK[name](args, out)
        record["stages"][name] = {"seconds": round(time.time() - t0, 1),
                                  "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        _save_record(out, record)
    done = ", ".join(f"{k} {v['seconds']:.0f}s" for k, v in record["stages"].items())
    print(f"pipeline: {done}; {out}", flush=True)
    return 0
