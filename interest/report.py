"""Static HTML report of one training run: ``interest report --run RUN`` writes ``RUN/report.html``.

Reads ``run.json`` (required) and, when present, ``history.json``, ``steps.json`` and ``metrics.json`` from
the run directory; plots go to ``RUN/plots/*.png`` (matplotlib, Agg backend). The page has no external
resources and no JavaScript. Every string read from the run files is HTML-escaped; missing files, missing
keys, NaN and null values show as "not available" / "n/a" instead of failing.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

PROTOCOL_LABELS = {
    "full": "full ranking",
    "full_exclude_seen": "full ranking, seen items excluded",
    "sampled100": "sampled: target + 100 negatives",
}
SEGMENT_LABELS = {
    "cold_users": "cold users",
    "warm_users": "warm users",
    "cold_items": "cold items (target)",
    "drifted_users": "drifted users",
}
PLOT_NAMES = ("loss", "valid", "baselines", "segments", "throughput")
_METRIC_RE = re.compile(r"^(hr|ndcg|mrr)@(\d+)$")
_METRIC_ORDER = {"hr": 0, "ndcg": 1, "mrr": 2}
_METRIC_LABEL = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR"}
MODEL_COLOR = "#d62728"
PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e"]

DEFINITIONS = (
    "For one user with candidate scores s over a candidate set C containing the target t: "
    "rank = 1 + #{j in C, j != t : s_j > s_t} + #{j in C, j != t : s_j == s_t} "
    "(ties are counted against the model: a constant scorer gets the worst rank).",
    "HR@K = 1[rank <= K]; NDCG@K = 1/log2(rank + 1) if rank <= K else 0 (one relevant item, so IDCG = 1); "
    "MRR@K = 1/rank if rank <= K else 0. Reported values are means over users.",
    "A target that is not rankable (id 0 padding or 1 OOV) counts with rank = infinity (all metrics 0) "
    "and in n_unrankable.",
    "Protocols: full = C is all item ids >= 2; full_exclude_seen = all ids >= 2 minus the user's seen items, "
    "the target always kept; sampled100 = the target + 100 uniform negatives per user (never seen items), "
    "deterministic per (seed, user).",
)

CSS = """
:root { --fg:#1d2330; --muted:#5b6577; --line:#d9dee7; --head:#f2f4f8; --accent:#b42318; --model:#fdf1ef; }
* { box-sizing: border-box; }
body { margin:0; background:#fafbfc; color:var(--fg);
       font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1180px; margin:0 auto; padding:24px 32px 48px; background:#fff; min-height:100vh;
       border-left:1px solid var(--line); border-right:1px solid var(--line); }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:19px; margin:36px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:20px 0 6px; }
p.sub { color:var(--muted); margin:0 0 14px; }
nav { font-size:13px; margin:8px 0 4px; }
nav a { color:#1f5fbf; text-decoration:none; margin-right:14px; white-space:nowrap; }
.na { color:var(--muted); font-style:italic; }
.scroll { overflow-x:auto; margin:6px 0 10px; }
table { border-collapse:collapse; font-size:13px; }
th, td { border:1px solid var(--line); padding:4px 9px; text-align:left; vertical-align:top; }
thead th { background:var(--head); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) td { background:#fbfcfd; }
tr.model td { background:var(--model) !important; }
tr.best td { background:#eef7ee !important; }
th.rowhead { background:#fff; font-weight:600; white-space:nowrap; }
table.kv th { background:var(--head); width:230px; white-space:nowrap; }
table.kv td { min-width:320px; }
td b { color:var(--accent); }
code, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12px; }
ul.defaults { margin:0; padding-left:18px; }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
.grid { display:flex; flex-wrap:wrap; gap:6px 28px; align-items:flex-start; }
.grid h3 { margin-top:8px; }
.grid table.kv th { width:auto; min-width:120px; }
.grid table.kv td { min-width:90px; }
.note { color:var(--muted); font-size:12.5px; margin:2px 0 10px; }
details summary { cursor:pointer; color:#1f5fbf; margin:8px 0; }
footer { margin-top:40px; padding-top:10px; border-top:1px solid var(--line); color:var(--muted); font-size:12px; }
footer ol { margin:4px 0 8px; padding-left:20px; }
footer li { margin:2px 0; }
"""


# ------------------------------------------------------------------------------------------- helpers

def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any) -> float | None:
    """A finite float, or None for missing / NaN / inf / non-numeric values."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _na(text: str = "n/a") -> str:
    return f'<span class="na">{_esc(text)}</span>'


def _fmt_metric(x: Any) -> str:
    v = _num(x)
    return _na() if v is None else f"{v:.4f}"


def _fmt_int(x: Any) -> str:
    v = _num(x)
    return _na() if v is None else f"{int(round(v)):,}"


def _fmt_float(x: Any, digits: int = 4) -> str:
    v = _num(x)
    if v is None:
        return _na()
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.{digits}g}"


def _fmt_duration(x: Any) -> str:
    v = _num(x)
    if v is None:
        return _na()
    total = int(round(v))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = (f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s" if m else f"{s} s")
    return f"{parts} <span class=\"na\">({v:,.1f} s)</span>"


def _fmt_params(x: Any) -> str:
    v = _num(x)
    if v is None:
        return _na()
    short = f"{v / 1e9:.2f} B" if v >= 1e9 else f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"
    return f"{int(v):,} ({short})"


def _fmt_value(x: Any, key: str = "") -> str:
    """Generic escaped rendering of a JSON value (``key`` only decides whether an int is a count)."""
    if x is None:
        return _na()
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x) if re.search(r"seed|(^|[._])(id|year|port)$", key.lower()) else f"{x:,}"
    if isinstance(x, float):
        return _fmt_float(x)
    if isinstance(x, (dict, list)):
        return f'<span class="mono">{_esc(json.dumps(x, default=str))}</span>'
    return _esc(x)


def _table(head: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
           num_cols: set[int] | None = None, head_html: str | None = None) -> str:
    """Cells are already-escaped HTML; the first column is a row header."""
    num_cols = num_cols or set()
    out = ['<div class="scroll"><table>']
    if head_html is not None:
        out.append(head_html)
    else:
        out.append("<thead><tr>" + "".join(
            f'<th class="{"num" if i in num_cols else ""}">{h}</th>' for i, h in enumerate(head)) + "</tr></thead>")
    out.append("<tbody>")
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = []
        for i, cell in enumerate(row):
            if i == 0:
                cells.append(f'<th class="rowhead">{cell}</th>')
            else:
                cells.append(f'<td class="{"num" if i in num_cols else ""}">{cell}</td>')
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    """Key (plain text, escaped here) / value (HTML) table."""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>'


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [(f"{prefix}{k}", v)]
        return out
    return [(prefix.rstrip("."), d)]


def _metric_keys(rows: list[Any]) -> list[str]:
    """hr/ndcg/mrr@K keys present in any of the dict rows, ordered by K then hr, ndcg, mrr."""
    keys = set()
    for r in rows:
        if isinstance(r, dict):
            keys |= {k for k in r if isinstance(k, str) and _METRIC_RE.match(k)}

    def order(k: str) -> tuple[int, int]:
        m = _METRIC_RE.match(k)
        return int(m.group(2)), _METRIC_ORDER[m.group(1)]
    return sorted(keys, key=order)


def _metric_label(key: str) -> str:
    m = _METRIC_RE.match(key)
    return f"{_METRIC_LABEL[m.group(1)]}@{m.group(2)}" if m else key


def _headline_k(keys: list[str], preferred: int = 10) -> int:
    ks = sorted({int(_METRIC_RE.match(k).group(2)) for k in keys})
    if not ks:
        return preferred
    return preferred if preferred in ks else ks[len(ks) // 2]


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _ordered_protocols(*dicts: Any) -> list[str]:
    found: list[str] = []
    for d in dicts:
        for k in _dict(d):
            if k not in found:
                found.append(k)
    known = [p for p in PROTOCOL_LABELS if p in found]
    return known + [p for p in found if p not in PROTOCOL_LABELS]


def _protocol_title(p: str) -> str:
    label = PROTOCOL_LABELS.get(p)
    return f"<code>{_esc(p)}</code>" + (f" — {_esc(label)}" if label else "")


def _load_json(path: Path) -> tuple[Any, str | None]:
    """(data, problem): (None, None) when the file is missing, (None, message) when unreadable."""
    if not path.exists():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as exc:
        return None, f"{path.name} could not be read: {exc}"


def _not_available(what: str, problem: str | None = None) -> str:
    text = f"{what}: not available" + (f" ({problem})" if problem else "")
    return f'<p class="na">{_esc(text)}</p>'


def _mpl_text(s: Any) -> str:
    return str(s).replace("$", r"\$")  # no accidental mathtext from names in the run files


# ------------------------------------------------------------------------------------------- plots

class _Plots:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / "plots"
        self.made: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def make(self, name: str, draw: Callable[[Any], bool], size: tuple[float, float] = (9.6, 3.6)) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        try:
            fig = Figure(figsize=size, dpi=110, layout="constrained")
            FigureCanvasAgg(fig)
            if not draw(fig):
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{name}.png"
            tmp = path.with_suffix(".png.tmp")
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)
            self.made[name] = f"plots/{name}.png"
        except Exception as exc:  # a broken plot must not take the report down
            self.errors[name] = f"{type(exc).__name__}: {exc}"

    def html(self, name: str, caption: str) -> str:
        if name in self.made:
            return (f'<figure><img src="{_esc(self.made[name])}" alt="{_esc(caption)}">'
                    f"<figcaption>{_esc(caption)}</figcaption></figure>")
        if name in self.errors:
            return _not_available(f"plot '{name}'", f"failed: {self.errors[name]}")
        return ""

    def remove_stale(self) -> None:
        for name in PLOT_NAMES:
            p = self.dir / f"{name}.png"
            if name not in self.made and p.exists():
                p.unlink()


def _style(ax: Any) -> None:
    ax.grid(True, color="#e5e8ee", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _series(rows: list[dict], xkey: str, ykey: str, sub: str | None = None) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        src = _dict(r.get(sub)) if sub else r
        x, y = _num(r.get(xkey)), _num(src.get(ykey))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _moving_average(ys: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _draw_loss(history: list[dict], steps: list[dict]) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        ax = fig.add_subplot()
        sx, sy = _series(steps, "step", "loss")
        ex_step, ey_step = _series(history, "step", "train_loss")
        ex, ey = _series(history, "epoch", "train_loss")
        if sx:
            ax.plot(sx, sy, color="#9ab7dd", linewidth=0.8, label="train loss (per logged step)")
            if len(sy) >= 20:
                w = max(5, len(sy) // 50)
                ax.plot(sx, _moving_average(sy, w), color="#1f5fbf", linewidth=1.6, label=f"moving average ({w} logs)")
            if ex_step:
                ax.plot(ex_step, ey_step, "o", color=MODEL_COLOR, markersize=5, label="epoch mean train loss")
            ax.set_xlabel("optimizer step")
        elif ex:
            ax.plot(ex, ey, "o-", color="#1f5fbf", linewidth=1.6, markersize=4, label="train loss (epoch mean)")
            ax.set_xlabel("epoch")
        else:
            return False
        ax.set_ylabel("loss")
        ax.set_title("Training loss", fontsize=11, loc="left")
        _style(ax)
        ax.legend(fontsize=8, frameon=False)
        return True
    return draw


def _draw_valid(history: list[dict], k: int, best_epoch: Any) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        ax = fig.add_subplot()
        drawn = False
        for key, color in ((f"ndcg@{k}", MODEL_COLOR), (f"hr@{k}", "#1f5fbf"), (f"mrr@{k}", "#2ca02c")):
            xs, ys = _series(history, "epoch", key, sub="valid")
            if xs:
                ax.plot(xs, ys, "o-", color=color, linewidth=1.6, markersize=4, label=f"valid {_metric_label(key)}")
                drawn = True
        if not drawn:
            return False
        be = _num(best_epoch)
        if be is not None:
            ax.axvline(be, color="#555", linestyle="--", linewidth=1, label=f"best epoch ({int(be)})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("metric")
        ax.set_title(f"Validation metrics per epoch (@{k}, full ranking)", fontsize=11, loc="left")
        _style(ax)
        ax.legend(fontsize=8, frameon=False)
        return True
    return draw


def _grouped_bars(fig: Any, groups: list[str], series: list[tuple[str, list[float | None], str]],
                  title: str, ylabel: str) -> bool:
    if not groups or not series or all(v is None for _, vals, _ in series for v in vals):
        return False
    ax = fig.add_subplot()
    n = len(series)
    width = min(0.8 / n, 0.3)
    for i, (label, vals, color) in enumerate(series):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        hs = [v if v is not None else 0.0 for v in vals]
        bars = ax.bar(xs, hs, width=width * 0.95, color=color, label=_mpl_text(label))
        for bar, v in zip(bars, vals):
            if v is None:
                ax.text(bar.get_x() + bar.get_width() / 2, 0, "n/a", ha="center", va="bottom", fontsize=6,
                        color="#5b6577")
    ax.set_xticks(range(len(groups)), [_mpl_text(g) for g in groups], fontsize=9)
    if len(groups) > 4 or max(len(g) for g in groups) > 12:  # long segment names collide when horizontal
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.set_ylabel(ylabel)
    ax.set_title(_mpl_text(title), fontsize=11, loc="left")
    _style(ax)
    ax.grid(False, axis="x")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return True


def _draw_throughput(history: list[dict], steps: list[dict], reported: Any) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        ax = fig.add_subplot()
        use_steps = bool(_series(steps, "wall_s", "seq_per_s")[0] or _series(steps, "step", "seq_per_s")[0])
        rows, label = (steps, "per logged step") if use_steps else (history, "per epoch")
        xs, ys = _series(rows, "wall_s", "seq_per_s")
        if xs:
            xs = [x / 60 for x in xs]
            ax.set_xlabel("wall time (min)")
        else:
            xkey = "step" if rows is steps else "epoch"
            xs, ys = _series(rows, xkey, "seq_per_s")
            ax.set_xlabel("optimizer step" if xkey == "step" else "epoch")
        if not xs:
            return False
        ax.plot(xs, ys, "o-" if len(xs) <= 60 else "-", color="#1f5fbf", linewidth=1.4, markersize=4,
                label=f"train sequences/s ({label})")
        rv = _num(reported)
        if rv is not None:
            ax.axhline(rv, color=MODEL_COLOR, linestyle="--", linewidth=1, label=f"reported mean {rv:,.0f}/s")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("sequences / s (all ranks)")
        ax.set_title("Training throughput over time", fontsize=11, loc="left")
        _style(ax)
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        return True
    return draw


# ------------------------------------------------------------------------------------------- sections

def _section_summary(run_dir: Path, run: dict) -> str:
    defaults = run.get("defaults_used")
    if isinstance(defaults, dict) and defaults:
        items = "".join(f"<li><code>{_esc(k)}</code> = {_fmt_value(v, str(k))}</li>" for k, v in defaults.items())
        defaults_html = f'<ul class="defaults">{items}</ul>'
    elif isinstance(defaults, dict):
        defaults_html = "none (every setting was given explicitly)"
    else:
        defaults_html = _fmt_value(defaults)
    stopped = run.get("stopped_early")
    early = (_na() if not isinstance(stopped, bool)
             else "yes — stopped early (no better validation NDCG@10 within the patience)" if stopped
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
        ("Best epoch", _fmt_value(run.get("best_epoch"))),
        ("Best validation NDCG@10", _fmt_metric(run.get("best_valid_ndcg@10"))),
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


def _section_training(history: Any, hist_problem: str | None, steps: Any, plots: _Plots,
                      best_epoch: Any) -> str:
    out = ['<h2 id="training">Training curves</h2>']
    hist = [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []
    stp = [r for r in steps if isinstance(r, dict)] if isinstance(steps, list) else []
    if not hist and not stp:
        out.append(_not_available("Training history (history.json)", hist_problem))
        return "".join(out)
    plots.make("loss", _draw_loss(hist, stp))
    out.append(plots.html("loss", "Training loss" + (" per logged step, with epoch means" if stp else " per epoch")))
    vkeys = _metric_keys([r.get("valid") for r in hist])
    k = _headline_k(vkeys)
    plots.make("valid", _draw_valid(hist, k, best_epoch))
    out.append(plots.html("valid", f"Validation NDCG@{k} / HR@{k} per epoch; dashed line = best epoch"))
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
        out.append('<p class="note">Highlighted row: best epoch (the checkpoint that was evaluated).</p>')
    return "".join(out)


def _metric_table(rows_in: list[tuple[str, Any, str]], bold_best: bool, counts: bool = True) -> str:
    """rows_in: (label HTML, metrics dict, row class)."""
    dicts = [_dict(m) for _, m, _ in rows_in]
    keys = _metric_keys(dicts)
    best: dict[str, float] = {}
    if bold_best:
        for key in keys:
            vals = [_num(d.get(key)) for d in dicts]
            vals = [v for v in vals if v is not None]
            if vals:
                best[key] = max(vals)
    head = ["", "users"] + (["unrankable"] if counts else []) + [_metric_label(k) for k in keys]
    rows, classes = [], []
    for (label, _, cls), d in zip(rows_in, dicts):
        cells = [label, _fmt_int(d.get("n_users"))]
        if counts:
            cells.append(_fmt_int(d.get("n_unrankable")))
        for key in keys:
            cell = _fmt_metric(d.get(key))
            v = _num(d.get(key))
            if key in best and v is not None and v == best[key]:
                cell = f"<b>{cell}</b>"
            cells.append(cell)
        rows.append(cells)
        classes.append(cls)
    return _table([_esc(h) for h in head], rows, classes, num_cols=set(range(1, len(head))))


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
    k = _headline_k(all_keys)
    hk = f"ndcg@{k}"
    out.append(f'<p class="note">One table per protocol; <b style="color:#b42318">bold</b> = best in the column. '
               f"The model row is shaded.</p>")
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


def _section_segments(metrics: dict, plots: _Plots) -> str:
    out = ['<h2 id="segments">Segments (test split)</h2>']
    segments = {str(k): _dict(v) for k, v in _dict(metrics.get("segments")).items()}
    if not segments:
        out.append(_not_available("Segment metrics"))
        return "".join(out)
    test = _dict(metrics.get("test"))
    protocols = _ordered_protocols(*segments.values())
    all_keys = _metric_keys([_dict(s.get(p)) for s in segments.values() for p in protocols])
    k = _headline_k(all_keys)
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


def _section_decay(metrics: dict) -> str:
    out = ['<h2 id="decay">Interest decay</h2>']
    decay = metrics.get("decay")
    if not isinstance(decay, dict) or not decay:
        out.append(_not_available("Decay evaluation (needs data.split=time)"))
        return "".join(out)
    pairs = [("Horizon (days)", _fmt_value(decay.get("horizon_days"))),
             ("AUC (active again within the horizon)", _fmt_metric(decay.get("auc"))),
             ("Brier score", _fmt_metric(decay.get("brier"))),
             ("Users", _fmt_int(decay.get("n_users")))]
    pairs += [(k, _fmt_value(v, k)) for k, v in decay.items() if k not in ("horizon_days", "auc", "brier", "n_users")]
    out.append(_kv_table(pairs))
    return "".join(out)


def _section_event_type(metrics: dict) -> str:
    out = ['<h2 id="event-type">Next event type</h2>']
    et = metrics.get("event_type")
    if not isinstance(et, dict) or not et:
        out.append(_not_available("Event-type head evaluation"))
        return "".join(out)
    pairs = [("Accuracy", _fmt_metric(et.get("accuracy")))]
    auc = et.get("auc")
    if isinstance(auc, dict):
        pairs += [(f"AUC ({k} vs rest)", _fmt_metric(v)) for k, v in auc.items()]
    else:
        pairs.append(("AUC", _fmt_metric(auc)))
    pairs += [(k, _fmt_value(v, k)) for k, v in et.items() if k not in ("accuracy", "auc")]
    out.append(_kv_table(pairs))
    return "".join(out)


# ------------------------------------------------------------------------------------------- page

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
    if metrics is not None and not isinstance(metrics, dict):
        metrics, metrics_problem = None, "metrics.json is not a JSON object"

    plots = _Plots(run_dir)
    body = [_section_summary(run_dir, run),
            _section_training(history, hist_problem, steps, plots, run.get("best_epoch"))]
    if metrics is None:
        for anchor, title in (("evaluation", "Evaluation (model)"), ("baselines", "Model vs baselines (test split)"),
                              ("segments", "Segments (test split)")):
            missing = _not_available("Evaluation (metrics.json)", metrics_problem)
            body.append(f'<h2 id="{anchor}">{title}</h2>{missing}')
        body.append(_section_throughput(None, history, steps, plots))
        body.append('<h2 id="decay">Interest decay</h2>' + _not_available("Decay evaluation"))
        body.append('<h2 id="event-type">Next event type</h2>' + _not_available("Event-type head evaluation"))
    else:
        body += [_section_evaluation(metrics, run), _section_baselines(metrics, run, plots),
                 _section_segments(metrics, plots), _section_throughput(metrics, history, steps, plots),
                 _section_decay(metrics), _section_event_type(metrics)]
    plots.remove_stale()

    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("summary", "Summary"), ("training", "Training"), ("evaluation", "Evaluation"),
        ("baselines", "Baselines"), ("segments", "Segments"), ("throughput", "Throughput"),
        ("decay", "Decay"), ("event-type", "Event type"), ("definitions", "Definitions")))
    title = f"Run report — {run_dir.resolve().name}"
    subtitle = " · ".join(x for x in (
        f"model {_esc(run.get('model', 'n/a'))}",
        f"finished {_esc(run['finished'])}" if run.get("finished") else "",
        f"{_fmt_int(run.get('world_size'))} rank(s)" if _num(run.get("world_size")) is not None else "",
    ) if x)
    footer = ('<footer id="definitions"><b>Metric definitions</b><ol>'
              + "".join(f"<li>{_esc(d)}</li>" for d in DEFINITIONS)
              + "</ol>Generated by <code>interest report</code> from the JSON files in the run directory.</footer>")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1><p class=\"sub\">{subtitle}</p><nav>{nav}</nav>"
        + "".join(body) + footer + "</main></body></html>\n"
    )
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


if __name__ == "__main__":
    sys.exit(main())
