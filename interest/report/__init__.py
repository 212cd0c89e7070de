"""Static HTML report of one training run: ``interest report --run RUN`` writes ``RUN/report.html``.

Reads ``run.json`` (required) and, when present, ``history.json``, ``steps.json``, ``metrics.json`` and
``export.json`` (left by ``interest export``) from the run directory; plots go to ``RUN/plots/*.png`` (matplotlib, Agg backend). The page has no external
resources and no JavaScript. Every string read from the run files is HTML-escaped; missing files, missing
keys, NaN and null values show as "not available" / "n/a" instead of failing.

The checkpoint-selection metric is ``run.json`` ``selection.metric`` (value ``best_valid_score``); run files
without ``selection`` are read as selecting on NDCG@10 (value ``best_valid_ndcg@10``). Metric keys may have any
K (``hr@5``, ``ndcg@20``, ...). Modules: ``page`` (HTML, formatting, tables), ``plots`` (matplotlib),
``sections`` (one builder per report section), ``decay`` (the interest-decay section), ``action`` (the
next-action section), ``migration`` (the interest-migration section), ``profiles`` (tags, profiles and segments);
this module reads the files and writes the page.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .action import _section_event_type
from .cold_start import _section_cold_start
from .decay import _section_decay
from .migration import _section_migration
from .page import CSS, DEFAULT_SELECTION_METRIC, DEFINITIONS, PROTOCOL_LABELS, _not_available, render_page
from .plots import PLOT_NAMES, _Plots
from .profiles import _section_profiles, item_titles
from .sections import (
    SEGMENT_LABELS,
    _section_baselines,
    _section_evaluation,
    _section_segments,
    _section_summary,
    _section_throughput,
    _section_training,
)

__all__ = ["CSS", "DEFAULT_SELECTION_METRIC", "DEFINITIONS", "PLOT_NAMES", "PROTOCOL_LABELS", "SEGMENT_LABELS",
           "add_arguments", "main", "run", "write_report"]


def _load_json(path: Path) -> tuple[Any, str | None]:
    """(data, problem): (None, None) when the file is missing, (None, message) when unreadable."""
    if not path.exists():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, f"{path.name} could not be read: {exc}"


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` (plus ``run_dir/plots/*.png``) and return the HTML path."""
    run_dir = Path(run_dir)
    run_path = run_dir / "run.json"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} not found: --run must be a training run directory (it holds run.json)")
    run, problem = _load_json(run_path)
    if problem or not isinstance(run, dict):
        raise ValueError(problem or f"{run_path}: expected a JSON object, got {type(run).__name__}")
    history, hist_problem = _load_json(run_dir / "history.json")
    steps, _ = _load_json(run_dir / "steps.json")
    metrics, metrics_problem = _load_json(run_dir / "metrics.json")
    export, _ = _load_json(run_dir / "export.json")
    if metrics is not None and not isinstance(metrics, dict):
        metrics, metrics_problem = None, "metrics.json is not a JSON object"

    plots = _Plots(run_dir)
    body = [_section_summary(run_dir, run), _section_training(history, hist_problem, steps, plots, run)]
    if metrics is None:
        for anchor, title in (("evaluation", "Evaluation (model)"), ("baselines", "Model vs baselines (test split)"),
                              ("segments", "Segments (test split)")):
            missing = _not_available("Evaluation (metrics.json)", metrics_problem)
            body.append(f'<h2 id="{anchor}">{title}</h2>{missing}')
        body.append(_section_throughput(None, history, steps, plots))
        body.append('<h2 id="decay">Interest decay</h2>' + _not_available("Decay evaluation"))
        body.append('<h2 id="event-type">Next action</h2>' + _not_available("Next-action evaluation"))
        body.append('<h2 id="migration">Interest migration</h2>' + _not_available("Interest-migration evaluation"))
        body.append('<h2 id="cold-start">Cold start</h2>' + _not_available("Cold-start evaluation"))
        body.append(_section_profiles(None, export, plots, item_titles(run.get("data_dir"))))
    else:
        body += [_section_evaluation(metrics, run), _section_baselines(metrics, run, plots),
                 _section_segments(metrics, run, plots), _section_throughput(metrics, history, steps, plots),
                 _section_decay(metrics, run, plots), _section_event_type(metrics, plots),
                 _section_migration(metrics, plots), _section_cold_start(metrics, plots),
                 _section_profiles(metrics, export, plots, item_titles(run.get("data_dir")))]
    plots.remove_stale()

    page = render_page(run_dir, run, body)
    out = run_dir / "report.html"
    tmp = run_dir / "report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, metavar="RUN",
        help="training run directory holding run.json (and history.json, steps.json, metrics.json when "
             "available), e.g. --run runs/ml-1m-sasrec; writes RUN/report.html and RUN/plots/*.png",
    )


def run(args: argparse.Namespace) -> int:
    try:
        path = write_report(args.run)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interest report", description="Write an HTML report of a training run.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
