"""The plots of the run report: matplotlib (Agg canvas, no pyplot state) figures saved to ``RUN/plots/*.png``.

Each ``_draw_*`` returns a callback that draws on a fresh figure and returns False when there is nothing to
plot; ``_Plots.make`` saves the figure and records a failure instead of raising, so a broken plot never takes
the report down. The ``_draw_decay_*`` callbacks take already-cleaned lists (floats, None for missing).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .page import PROTOCOL_LABELS, _dict, _esc, _metric_label, _not_available, _num

PLOT_NAMES = ("loss", "valid", "baselines", "segments", "throughput", "decay_survival", "decay_reliability",
              "decay_half_life", "action_roc", "action_confusion", "segments_map",
              "migration_drift", "migration_latent_map", "migration_paths", "cold_start")
MODEL_COLOR = "#d62728"
PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e"]


def _mpl_text(s: Any) -> str:
    return str(s).replace("$", r"\$")  # no accidental mathtext from names in the run files


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


def _draw_valid(history: list[dict], k: int, best_epoch: Any, protocol: str) -> Callable[[Any], bool]:
    """Validation HR/NDCG/MRR@k per epoch (the ``valid`` dict of each history row) under ``protocol``."""
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
            ax.axvline(be, color="#555", linestyle="--", linewidth=1, label=f"best ({be:g} epochs)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("metric")
        where = _mpl_text(PROTOCOL_LABELS.get(protocol, protocol))
        ax.set_title(f"Validation metrics at each validation (@{k}, {where})", fontsize=11, loc="left")
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


# ------------------------------------------------------------------------------------------- decay

_DAY_TICKS = ((1 / 24, "1 h"), (0.25, "6 h"), (1, "1 d"), (7, "7 d"), (30, "30 d"), (90, "90 d"), (365, "365 d"))


def _day_ticks(ax: Any, lo: float, hi: float) -> None:
    """Readable ticks (hours / days) on a log day axis spanning [lo, hi]."""
    ticks = [(v, t) for v, t in _DAY_TICKS if lo * 0.999 <= v <= hi * 1.001]
    if len(ticks) >= 2:
        ax.set_xticks([v for v, _ in ticks], [t for _, t in ticks])
        ax.minorticks_off()


def _draw_decay_survival(days: list[float | None], curves: list[tuple[str, list[float | None]]],
                         horizon: float | None, observed: float | None) -> Callable[[Any], bool]:
    """Mean residual survival S(t) vs t (days, log axis): curves = [(legend label, values at ``days``)], the first
    one is the population (drawn in the model colour); a marker at (horizon, observed) when both are known."""
    def draw(fig: Any) -> bool:
        ax = fig.add_subplot()
        drawn = False
        for i, (label, ys) in enumerate(curves):
            pts = [(x, y) for x, y in zip(days, ys) if x is not None and x > 0 and y is not None]
            if not pts:
                continue
            color, lw = (MODEL_COLOR, 2.2) if i == 0 else (PALETTE[(i - 1) % len(PALETTE)], 1.3)
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", color=color, linewidth=lw, markersize=3.5,
                    label=_mpl_text(label))
            drawn = True
        if not drawn:
            return False
        if horizon is not None and horizon > 0 and observed is not None:
            ax.axvline(horizon, color="#888", linestyle=":", linewidth=1)
            ax.plot([horizon], [observed], "D", color="black", markersize=7, zorder=5,
                    label=f"observed at H = {horizon:g} d ({observed:.1%} silent)")
        ax.set_xscale("log")
        xs = [x for x in days if x is not None and x > 0] + ([horizon] if horizon and horizon > 0 else [])
        _day_ticks(ax, min(xs), max(xs))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("days after the cutoff (log scale)")
        ax.set_ylabel("S(t) = P(still silent)")
        ax.set_title("Survival of interest: mean P(no event within t days | silent so far)", fontsize=11, loc="left")
        _style(ax)
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return True
    return draw


def unit_square(ax: Any, diagonal: str, xlabel: str, ylabel: str, title: str, legend_at: str) -> None:
    """A [0, 1] x [0, 1] panel with its dashed diagonal (labelled `diagonal`), labels, title and legend."""
    ax.plot([0, 1], [0, 1], "--", color="#888", linewidth=1, label=diagonal)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    ax.legend(fontsize=8, frameon=False, loc=legend_at)


def _draw_decay_reliability(edges: list[float | None], count: list[float | None], mean_pred: list[float | None],
                            rate: list[float | None]) -> Callable[[Any], bool]:
    """Reliability diagram (mean predicted vs observed rate per bin, point area ~ users; empty bins skipped) and
    the users per bin as bars beside it."""
    def draw(fig: Any) -> bool:
        bins = [(c, p, r) for c, p, r in zip(count, mean_pred, rate)
                if c is not None and c > 0 and p is not None and r is not None]
        if not bins:
            return False
        ax, axc = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        cmax = max(c for c, _, _ in bins)
        ax.plot([p for _, p, _ in bins], [r for _, _, r in bins], "-", color=MODEL_COLOR, linewidth=1.2, alpha=0.6)
        ax.scatter([p for _, p, _ in bins], [r for _, _, r in bins], s=[20 + 220 * c / cmax for c, _, _ in bins],
                   color=MODEL_COLOR, edgecolor="white", linewidth=0.8, zorder=3, label="bins (area ~ users)")
        unit_square(ax, "perfect calibration", "mean predicted P(active within H)", "observed share active",
                    "Reliability (test users)", "upper left")

        ok = [e for e in edges if e is not None]
        if len(edges) == len(count) + 1 and len(ok) == len(edges):
            lefts, widths = edges[:-1], [b - a for a, b in zip(edges[:-1], edges[1:])]
        else:  # no usable edges: equal-width bins on [0, 1]
            n = len(count)
            lefts, widths = [i / n for i in range(n)], [1 / n] * n
        hs = [c if c is not None else 0 for c in count]
        axc.bar(lefts, hs, width=[w * 0.92 for w in widths], align="edge", color="#1f5fbf")
        axc.set_xlim(0, 1)
        axc.set_xlabel("predicted P(active within H) bin")
        axc.set_ylabel("users")
        axc.set_title("Users per bin", fontsize=11, loc="left")
        _style(axc)
        axc.grid(False, axis="x")
        return True
    return draw


def _draw_decay_half_life(edges: list[float | None], counts: list[float | None], median: float | None,
                          beyond: float | None) -> Callable[[Any], bool]:
    """Histogram of the users' interest half-life (days, log-spaced bins on a log axis) with the median."""
    def draw(fig: Any) -> bool:
        if len(edges) != len(counts) + 1 or not counts or any(e is None or e <= 0 for e in edges):
            return False
        hs = [c if c is not None else 0 for c in counts]
        if not any(hs):
            return False
        ax = fig.add_subplot()
        ax.bar(edges[:-1], hs, width=[b - a for a, b in zip(edges[:-1], edges[1:])], align="edge", color="#1f5fbf",
               edgecolor="white", linewidth=0.8, label="users")
        if median is not None and median > 0:
            ax.axvline(median, color=MODEL_COLOR, linestyle="--", linewidth=1.4, label=f"median {median:.3g} days")
        ax.set_xscale("log")
        ax.set_xlim(edges[0], edges[-1])
        _day_ticks(ax, edges[0], edges[-1])
        ax.set_xlabel("half-life (days until P(next event) reaches 1/2, log scale)")
        ax.set_ylabel("users")
        tail = f": {beyond:.1%} of users beyond 365 days (not in the bars)" if beyond is not None else ""
        ax.set_title(f"Interest half-life{tail}", fontsize=11, loc="left")
        _style(ax)
        ax.grid(False, axis="x")
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        return True
    return draw
