"""The "Interest migration" section of the run report, from ``metrics.json["migration"]``.

``interest evaluate`` scores drift between each user's early and recent window (latent Mult-VAE posteriors,
sequence-model states, category Jensen-Shannon), flags migrators, estimates when they migrated and counts the
category -> category paths. Every part is optional here: missing parts render as "n/a" / "not available".
"""
from __future__ import annotations

from typing import Any, Callable

from .page import _dict, _esc, _fmt_int, _fmt_metric, _not_available, _num, _table
from .plots import MODEL_COLOR, PALETTE, _mpl_text, _Plots, _style

SCORE_LABELS = {"latent": "latent (Mult-VAE posteriors)", "sequence": "sequence (user state, cosine)",
                "category_js": "category Jensen-Shannon (baseline)"}


def _draw_histogram(hist: dict, threshold: float | None) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        counts, edges = hist.get("counts"), hist.get("edges")
        if not isinstance(counts, list) or not isinstance(edges, list) or len(edges) != len(counts) + 1 or not counts:
            return False
        ax = fig.add_subplot()
        lefts = [_num(e) or 0.0 for e in edges[:-1]]
        widths = [(_num(b) or 0.0) - (_num(a) or 0.0) for a, b in zip(edges[:-1], edges[1:])]
        ax.bar(lefts, [_num(c) or 0 for c in counts], width=widths, align="edge", color=PALETTE[0], alpha=0.8)
        if threshold is not None:
            ax.axvline(threshold, color=MODEL_COLOR, linestyle="--", linewidth=1.2, label="migrated above")
            ax.legend(fontsize=8)
        _style(ax)
        ax.set_xlabel(_mpl_text(SCORE_LABELS.get(hist.get("score"), hist.get("score"))))
        ax.set_ylabel("users")
        ax.set_title("Drift between the early and the recent window", fontsize=11, loc="left")
        return True
    return draw


def _draw_paths(paths: list) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        rows = [(f"{p.get('from')} → {p.get('to')}", _num(p.get("users")) or 0) for p in paths if isinstance(p, dict)]
        if not rows:
            return False
        rows = rows[::-1]  # largest on top
        ax = fig.add_subplot()
        ax.barh(range(len(rows)), [n for _, n in rows], color=PALETTE[1])
        ax.set_yticks(range(len(rows)), [_mpl_text(label) for label, _ in rows], fontsize=7)
        _style(ax)
        ax.set_xlabel("flagged users")
        ax.set_title("Migration paths: top category before → after", fontsize=11, loc="left")
        return True
    return draw


def _draw_latent_map(m: dict) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        early, recent = m.get("early"), m.get("recent")
        paths = [t for t in m.get("trajectories") or [] if isinstance(t, dict) and t.get("points")]
        if not isinstance(early, list) or not isinstance(recent, list) or not early:
            return False
        ax = fig.add_subplot()
        for pts, color, label in ((early, "#b8b8b8", "users, early window"), (recent, "#e3c9a0", "users, recent window")):
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, color=color, alpha=0.6, label=label,
                       linewidths=0)
        for n, t in enumerate(paths):
            xs, ys = [p[0] for p in t["points"]], [p[1] for p in t["points"]]
            color = PALETTE[n % len(PALETTE)]
            ax.plot(xs, ys, color=color, linewidth=1.3, alpha=0.9)
            ax.scatter(xs[:1], ys[:1], color=color, marker="o", s=28, zorder=3)
            ax.scatter(xs[-1:], ys[-1:], color=color, marker=">", s=40, zorder=3)
            est, days = _num(t.get("estimated_days_before_end")), t.get("days_before_end") or []
            if est is not None and days:  # the first window ending at or after the estimated migration
                k = next((i for i, d in enumerate(days) if (_num(d) or 0) <= est), len(days) - 1)
                ax.scatter([xs[k]], [ys[k]], color="black", marker="x", s=36, zorder=4,
                           label="estimated migration" if n == 0 else None)
        _style(ax)
        var = [(_num(v) or 0) * 100 for v in (m.get("explained_variance") or [0, 0])[:2]]
        ax.set_xlabel(f"latent PC 1 ({var[0]:.0f}% of variance)")
        ax.set_ylabel(f"latent PC 2 ({var[1]:.0f}%)" if len(var) > 1 else "latent PC 2")
        ax.set_title("Latent interests: migrators' paths (o start, > end)", fontsize=11, loc="left")
        ax.legend(fontsize=7, loc="best", markerscale=1.5)
        return True
    return draw


def _section_migration(metrics: dict, plots: _Plots) -> str:
    out = ['<h2 id="migration">Interest migration</h2>']
    m = metrics.get("migration")
    if not isinstance(m, dict) or not m:
        out.append(_not_available("Interest-migration evaluation"))
        return "".join(out)
    out.append(f"<p>Drift between each user's events in the last {_fmt_metric(m.get('window_days'))} days before "
               f"the end of observation and all earlier ones, over {_fmt_int(m.get('n_users'))} users with events "
               f"in both windows; {_fmt_int(m.get('n_flagged'))} flagged as migrated by the "
               f"{_esc(SCORE_LABELS.get(m.get('flag_score'), m.get('flag_score')))} score.</p>")
    aucs = _dict(m.get("auc"))
    if aucs:
        out.append(_table(["drift score", "AUC against the planted migrations"],
                          [[_esc(SCORE_LABELS.get(k, k)), _fmt_metric(v)] for k, v in aucs.items()]))
        thr = _dict(m.get("threshold"))
        held = (f"Measured on the {_fmt_int(m['n_held_out'])} held-out users (the flag's threshold is fitted on the "
                "others): ") if m.get("n_held_out") is not None else ""
        out.append(f'<p class="note">{held}{_fmt_int(m.get("n_migrated"))} users migrated inside their observed '
                   f"history. Flag: precision {_fmt_metric(m.get('precision'))}, recall {_fmt_metric(m.get('recall'))} "
                   f"(threshold {_fmt_metric(thr.get('value'))}, {_esc(thr.get('chosen_on'))}); estimated migration "
                   f"time within 7 days of the planted one for {_fmt_metric(m.get('time_within_7d'))} of "
                   f"{_fmt_int(m.get('n_true_positives'))} true positives.</p>")
    thr_value = _num(_dict(m.get("threshold")).get("value")) if aucs else None
    plots.make("migration_drift", _draw_histogram(_dict(m.get("histogram")), thr_value), size=(5.6, 3.8))
    out.append(plots.html("migration_drift", "Users by drift score; the dashed line is the migrated flag's "
                          "threshold.") or "")
    lmap = _dict(m.get("latent_map"))
    if lmap:
        plots.make("migration_latent_map", _draw_latent_map(lmap), size=(6.0, 4.6))
        out.append(plots.html("migration_latent_map", "Mult-VAE posterior means projected on their first two principal "
                              f"components: users' early and recent windows, and {len(lmap.get('trajectories') or [])}"
                              f" flagged migrators' windows of {_fmt_metric(lmap.get('window_days'))} days sliding by "
                              f"{_fmt_metric(lmap.get('step_days'))}, oldest to newest.") or "")
    paths = m.get("paths") if isinstance(m.get("paths"), list) else []
    plots.make("migration_paths", _draw_paths(paths), size=(6.4, 0.6 + 0.28 * max(len(paths), 1)))
    out.append(plots.html("migration_paths", "Flagged users by their most frequent category in the early window and in "
                          "the recent one (changes only).") or "")
    return "".join(out)
