"""The `interest` command: demo, generate, etl, categories, train, evaluate, report, export, recommend, pipeline, plan.

Each subcommand's --help lists every flag with an example. Parsing is lazy: only the chosen command's module is
imported (so `interest --help` loads no torch, ray or pyspark), and each module imports its heavy libraries itself.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from interest_core.verbosity import set_verbose

# name -> (module with add_arguments(parser) and run(args), help, example)
COMMANDS = {
    "demo": ("interest.demo", "run the whole pipeline on synthetic data: generate, etl, train, evaluate, export, report",
             "interest demo --out demo_out"),
    "generate": ("interest.synthetic", "write a synthetic e-commerce event data set with planted structure",
                 "interest generate --out data/synth --users 2000 --events 100000 --seed 1"),
    "etl": ("spark_jobs.etl", "Spark ETL: raw events -> validated, pseudonymized, leakage-free sequence shards",
            "INTEREST_HMAC_KEY=... interest etl --input data/synth --format synthetic --output data/shards"),
    "categories": ("interest.categories", "categories for a catalog without any: clusters of its text embeddings, "
                   "named by their words -> a catalog for `interest etl --items`",
                   "interest categories --data data/shards --output data/catalog.parquet"),
    "train": ("ray_train.train", "train with Ray Train + Ray Data + DeepSpeed; rerun the same --output to resume",
              "interest train --data data/shards --output runs/r1 --config tiny-cpu --workers 2 --zero-stage 2"),
    "evaluate": ("interest.evaluate", "full-ranking metrics, segments and baselines -> RUN/metrics.json",
                 "interest evaluate --run runs/r1"),
    "report": ("interest.report", "HTML report with plots -> RUN/report.html", "interest report --run runs/r1"),
    "export": ("interest.export", "user profiles (embedding, top-K, tags, segment) and model files",
               "interest export --run runs/r1 --output exports/r1"),
    "recommend": ("interest.recommend", "top-K items for ad-hoc event histories from an exported model (ONNX Runtime)",
                  "interest recommend --model exports/r1/model --history histories.csv --top-k 10"),
    "pipeline": ("interest.pipeline", "ETL, train, evaluate, report and export as one resumable job (local or as "
                 "one `ray job submit`)", "interest pipeline --config base --input data/synth --format synthetic "
                 "--out pipelines/p1 --hmac-key-file secret"),
    "plan": ("cluster.plan", "capacity plan: GPU memory, epoch, checkpoint, export and ETL sizing (table + JSON)",
             "interest plan --config large --num-items 4000000 --gpus 16 --events 1e10"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of `command` only (None: every command's, e.g. for a test of all examples)."""
    parser = argparse.ArgumentParser(prog="interest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true",
                        help="also show Spark, Ray, Ray Train, Ray Data and DeepSpeed logs and warnings (default: "
                             "stages, progress and results only; INTEREST_VERBOSE=1 does the same), e.g. "
                             "interest --verbose train --data data/shards --output runs/r1")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text, example) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=f"{help_text}.\n\nexample:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(_module=module)
        if command is None or command == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def parse_command(command: str, argv: list[str]) -> argparse.Namespace:
    """A command's arguments exactly as `interest COMMAND ...` parses them (defaults included): how `interest demo`
    and `interest pipeline` call the other commands."""
    return build_parser(command).parse_args([command, *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The top-level parser's options are flags (-h, --verbose), so the first positional word is the command.
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    set_verbose(args.verbose)
    module = importlib.import_module(args._module)
    try:
        from interest.remote import local_dirs  # runs and exports given as URIs: local copies, uploaded after

        with local_dirs(args) as upload:
            rc = module.run(args)
            if rc == 0:
                upload()
            return rc
    except (ValueError, FileNotFoundError) as exc:
        # Bad usage (a setting, a path, data that does not fit): the message carries the fix; a traceback would
        # bury it. Exit 2, as argparse does.
        print(f"interest {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a job that failed (Ray Train, Spark, a worker): one line and the log
        log = failure_log(args, exc)
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        print(f"interest {args.command}: failed: {type(exc).__name__}: {first[:400]}; the whole error is in {log}",
              file=sys.stderr)
        return 1


def failure_log(args: argparse.Namespace, exc: BaseException) -> Path:
    """Writes the failure's traceback beside the command's output (the run or data directory when it exists, else
    the working directory) and returns the file's path."""
    import traceback

    where = next((Path(d) for d in (getattr(args, k, None) for k in ("output", "run", "out"))
                  if d and Path(d).is_dir()), Path.cwd())
    log = where / f"interest-{args.command}-error.log"
    log.write_text("".join(traceback.format_exception(exc)))
    return log


if __name__ == "__main__":
    sys.exit(main())
