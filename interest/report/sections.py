"""The sections of the run report, one ``_section_*`` builder per ``<h2>``: each returns HTML and draws its plots.

The checkpoint-selection metric comes from ``run.json``: ``selection`` = {"protocol", "metric"} with the value in
``best_valid_score``; runs written before that carry ``best_valid_ndcg@10`` and no ``selection``
(``DEFAULT_SELECTION_METRIC``). Its K is the headline K of the curves and bar charts whenever the metrics have it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .page import (
    DEFAULT_SELECTION_METRIC,
    _METRIC_RE,
    _dict,
    _esc,
    _flatten,
    _fmt_duration,
    _fmt_int,
    _fmt_float,
    _fmt_metric,
    _fmt_params,
    _fmt_value,
    _headline_k,
    _kv_table,
    _metric_k,
    _metric_keys,
    _metric_label,
    _metric_table,
    _na,
    _not_available,
    _num,
    _ordered_protocols,
    _protocol_title,
    _table,
)
from .plots import MODEL_COLOR, PALETTE, _draw_loss, _draw_throughput, _draw_valid, _grouped_bars, _Plots

SEGMENT_LABELS = {
    "cold_users": "cold users",
    "warm_users": "warm users",
    "cold_items": "cold items (target)",
    "drifted_users": "drifted users",
}


class _Selection(NamedTuple):
    metric: str          # e.g. "ndcg@5", lower case
    protocol: str        # "full" when run.json does not say
    value: Any           # best validation value of ``metric`` (raw JSON value)

    @property
    def label(self) -> str:
        return _metric_label(self.metric)

    @property
    def k(self) -> int:
        """K of the selection metric (K of the default metric when the metric has none)."""
        k = _metric_k(self.metric)
        return k if k is not None else _metric_k(DEFAULT_SELECTION_METRIC)


def _selection(run: dict) -> _Selection:
    """The checkpoint-selection metric of a run, from the new (``selection``) or the old run.json layout."""
    sel = _dict(run.get("selection"))
    metric = sel.get("metric")
    metric = metric.strip().lower() if isinstance(metric, str) and metric.strip() else DEFAULT_SELECTION_METRIC
    protocol = sel.get("protocol")
    protocol = protocol if isinstance(protocol, str) and protocol else "full"
    value = run["best_valid_score"] if "best_valid_score" in run else run.get(f"best_valid_{metric}")
    return _Selection(metric, protocol, value)


def _section_summary(run_dir: Path, run: dict) -> str:
    defaults = run.get("defaults_used")
    if isinstance(defaults, dict) and defaults:
        items = "".join(f"<li><code>{_esc(k)}</code> = {_fmt_value(v, str(k))}</li>" for k, v in defaults.items())
        defaults_html = f'<ul class="defaults">{items}</ul>'
    elif isinstance(defaults, dict):
        defaults_html = "none (every setting was given explicitly)"
    else:
        defaults_html = _fmt_value(defaults)
    sel = _selection(run)
    stopped = run.get("stopped_early")
    early = (_na() if not isinstance(stopped, bool)
             else f"yes — stopped early (no better validation {_esc(sel.label)} within the patience)" if stopped
             else "no — ran the configured number of epochs")
    cfg = _dict(run.get("config"))
    arch = _dict(cfg.get("model")).get("arch")
    model = _esc(run.get("model", "n/a"))
    if arch is not None and str(arch) != str(run.get("model")):
        model += f" (arch {_esc(arch)})"
    pairs = [
        ("Run directory", f"<code>{_esc(run_dir.resolve())}</code>"),
        ("Data", f"<code>{_esc(run['data_dir'])}</code>" if run.get("data_dir") is not None else _na()),
        ("Model", model),
        ("Parameters", _fmt_params(run.get("num_params"))),
        ("World size (ranks)", _fmt_int(run.get("world_size"))),
        ("ZeRO stage", _fmt_value(run.get("zero_stage"))),
        ("Global batch (sequences / step)", _fmt_int(run.get("global_batch"))),
        ("Wall time", _fmt_duration(run.get("wall_time_s"))),
        ("Started", _fmt_value(run.get("started"))),
        ("Finished", _fmt_value(run.get("finished"))),
        ("Best epoch (epochs trained at the best validation)", _fmt_value(run.get("best_epoch"))),
        (f"Best validation {sel.label}" + (f" ({sel.protocol})" if sel.protocol != "full" else ""),
         _fmt_metric(sel.value)),
        ("Early stopping", early),
        ("Defaults used", defaults_html),
    ]
    out = ['<h2 id="summary">Run summary</h2>', _kv_table(pairs)]
    manifest = run.get("manifest")
    if isinstance(manifest, dict) and manifest:
        out.append("<h3>Data manifest</h3>")
        out.append(_kv_table([(k, _fmt_value(v, k)) for k, v in _flatten(manifest)]))
    if cfg:
        blocks = []
        for section, values in cfg.items():
            pairs_s = [(k, _fmt_value(v, k)) for k, v in _flatten(values)] if isinstance(values, dict) \
                else [(str(section), _fmt_value(values))]
            blocks.append(f"<div><h3><code>{_esc(section)}</code></h3>{_kv_table(pairs_s)}</div>")
        out.append(f'<details><summary>Full configuration</summary><div class="grid">{"".join(blocks)}</div></details>')
    return "".join(out)


def _section_training(history: Any, hist_problem: str | None, steps: Any, plots: _Plots, run: dict) -> str:
    out = ['<h2 id="training">Training curves</h2>']
    hist = [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []
    stp = [r for r in steps if isinstance(r, dict)] if isinstance(steps, list) else []
    if not hist and not stp:
        out.append(_not_available("Training history (history.json)", hist_problem))
        return "".join(out)
    plots.make("loss", _draw_loss(hist, stp))
    out.append(plots.html("loss", "Training loss" + (" per logged step, with epoch means" if stp else " per epoch")))
    vkeys = _metric_keys([r.get("valid") for r in hist])
    sel = _selection(run)
    k = _headline_k(vkeys, sel.k)
    best_epoch = run.get("best_epoch")
    plots.make("valid", _draw_valid(hist, k, best_epoch, sel.protocol))
    out.append(plots.html("valid", f"Validation NDCG@{k} / HR@{k} at each validation (x: epochs trained); dashed "
                                    "line = the best one"))
    if not hist:
        out.append(_not_available("Per-epoch history (history.json)", hist_problem))
        return "".join(out)
    shown = [key for key in vkeys if int(_METRIC_RE.match(key).group(2)) == k] or vkeys[:3]
    head = ["epoch", "step", "train loss"] + [f"valid {_metric_label(key)}" for key in shown] + \
        ["seq/s", "wall time", "lr"]
    rows, classes = [], []
    be = _num(best_epoch)
    for r in hist:
        valid = _dict(r.get("valid"))
        rows.append([_fmt_value(r.get("epoch")), _fmt_int(r.get("step")), _fmt_float(r.get("train_loss"))]
                    + [_fmt_metric(valid.get(key)) for key in shown]
                    + [_fmt_int(r.get("seq_per_s")), _fmt_duration(r.get("wall_s")), _fmt_float(r.get("lr"), 3)])
        classes.append("best" if be is not None and _num(r.get("epoch")) == be else "")
    out.append("<h3>Per-epoch history</h3>")
    out.append(_table([_esc(h) for h in head], rows, classes, num_cols=set(range(1, len(head)))))
    if be is not None:
        out.append('<p class="note">Highlighted row: the best validation (the checkpoint that was evaluated).</p>')
    return "".join(out)


def _section_evaluation(metrics: dict, run: dict) -> str:
    out = ['<h2 id="evaluation">Evaluation (model)</h2>']
    protocol = metrics.get("protocol")
    if isinstance(protocol, dict) and protocol:
        out.append("<h3>Protocol</h3>")
        out.append(_kv_table([(k, _fmt_value(v, k)) for k, v in _flatten(protocol)]))
    rows = []
    for split in ("valid", "test"):
        sd = metrics.get(split)
        for p in _ordered_protocols(sd):
            label = f"{_esc(split)} · <code>{_esc(p)}</code>"
            rows.append((label, _dict(sd).get(p), "model" if split == "test" else ""))
    if rows:
        out.append("<h3>Model, validation and test splits</h3>")
        out.append(_metric_table(rows, bold_best=False))
    else:
        out.append(_not_available("Validation/test metrics"))
    return "".join(out)


def _section_baselines(metrics: dict, run: dict, plots: _Plots) -> str:
    out = ['<h2 id="baselines">Model vs baselines (test split)</h2>']
    test = _dict(metrics.get("test"))
    baselines = {str(k): _dict(v) for k, v in _dict(metrics.get("baselines")).items()}
    if not test and not baselines:
        out.append(_not_available("Test metrics and baselines"))
        return "".join(out)
    if not baselines:
        out.append(_not_available("Baselines"))
    model_name = str(run.get("model", "model"))
    protocols = _ordered_protocols(test, *baselines.values())
    all_keys = _metric_keys([_dict(test.get(p)) for p in protocols]
                            + [_dict(b.get(p)) for b in baselines.values() for p in protocols])
    k = _headline_k(all_keys, _selection(run).k)
    hk = f"ndcg@{k}"
    out.append('<p class="note">One table per protocol; <b style="color:#b42318">bold</b> = best in the column. '
               "The model row is shaded.</p>")
    for p in protocols:
        rows = [(f"{_esc(model_name)} (model)", test.get(p), "model")]
        rows += [(_esc(name), b.get(p), "") for name, b in baselines.items()]
        out.append(f"<h3>{_protocol_title(p)}</h3>")
        out.append(_metric_table(rows, bold_best=True))
        mv = _num(_dict(test.get(p)).get(hk))
        bvals = [(name, _num(_dict(b.get(p)).get(hk))) for name, b in baselines.items()]
        bvals = [(n, v) for n, v in bvals if v is not None]
        if mv is not None and bvals:
            bn, bv = max(bvals, key=lambda x: x[1])
            lift = f"{(mv / bv - 1) * 100:+.1f}%" if bv > 0 else "n/a (best baseline is 0)"
            out.append(f'<p class="note">Model NDCG@{k} {mv:.4f} vs best baseline {_esc(bn)} {bv:.4f}: '
                       f"{_esc(lift)}.</p>")

    series = [(f"{model_name} (model)", [_num(_dict(test.get(p)).get(hk)) for p in protocols], MODEL_COLOR)]
    for i, (name, b) in enumerate(baselines.items()):
        series.append((name, [_num(_dict(b.get(p)).get(hk)) for p in protocols], PALETTE[i % len(PALETTE)]))
    plots.make("baselines", lambda fig: _grouped_bars(
        fig, protocols, series, f"Test NDCG@{k} by protocol: model vs baselines", f"NDCG@{k}"))
    out.append(plots.html("baselines", f"Test NDCG@{k} per protocol, model (red) vs baselines"))
    return "".join(out)


def _section_segments(metrics: dict, run: dict, plots: _Plots) -> str:
    out = ['<h2 id="segments">Segments (test split)</h2>']
    segments = {str(k): _dict(v) for k, v in _dict(metrics.get("segments")).items()}
    if not segments:
        out.append(_not_available("Segment metrics"))
        return "".join(out)
    test = _dict(metrics.get("test"))
    protocols = _ordered_protocols(*segments.values())
    all_keys = _metric_keys([_dict(s.get(p)) for s in segments.values() for p in protocols])
    k = _headline_k(all_keys, _selection(run).k)
    hk = f"ndcg@{k}"
    out.append('<p class="note">Each segment is a subset of the test users; the shaded first row is all test '
               "users for reference.</p>")

    def seg_label(name: str) -> str:
        label = SEGMENT_LABELS.get(name)
        return f"<code>{_esc(name)}</code>" + (f" <span class=\"na\">{_esc(label)}</span>" if label else "")

    for p in protocols:
        rows = [("all test users", test.get(p), "model")] if p in test else []
        rows += [(seg_label(name), s.get(p), "") for name, s in segments.items()]
        out.append(f"<h3>{_protocol_title(p)}</h3>")
        out.append(_metric_table(rows, bold_best=False))

    groups = (["all test users"] if any(p in test for p in protocols) else []) + list(segments)
    series = []
    for i, p in enumerate(protocols):
        vals = ([_num(_dict(test.get(p)).get(hk))] if groups and groups[0] == "all test users" else [])
        vals += [_num(_dict(s.get(p)).get(hk)) for s in segments.values()]
        series.append((p, vals, PALETTE[i % len(PALETTE)]))
    plots.make("segments", lambda fig: _grouped_bars(
        fig, groups, series, f"Test NDCG@{k} by segment and protocol", f"NDCG@{k}"), size=(9.6, 3.8))
    out.append(plots.html("segments", f"Model test NDCG@{k} per segment, one bar per protocol"))
    return "".join(out)


def _section_throughput(metrics: dict | None, history: Any, steps: Any, plots: _Plots) -> str:
    out = ['<h2 id="throughput">Throughput</h2>']
    tp = _dict(_dict(metrics).get("throughput"))
    hist = [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []
    stp = [r for r in steps if isinstance(r, dict)] if isinstance(steps, list) else []
    if tp:
        pairs = [("Training (sequences / s, all ranks)", _fmt_int(tp.get("train_seq_per_s"))),
                 ("Ingest (rows / s)", _fmt_int(tp.get("ingest_rows_per_s")))]
        pairs += [(k, _fmt_value(v, k)) for k, v in tp.items() if k not in ("train_seq_per_s", "ingest_rows_per_s")]
        out.append(_kv_table(pairs))
    plots.make("throughput", _draw_throughput(hist, stp, tp.get("train_seq_per_s")))
    fig = plots.html("throughput", "Training sequences per second over wall time")
    out.append(fig)
    if not tp and not fig:
        out.append(_not_available("Throughput"))
    return "".join(out)
