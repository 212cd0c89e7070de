"""The "Interest decay" section of the run report, from ``metrics.json["decay"]``.

``interest evaluate`` writes the block under a time split (null under leave-one-out): the model's
P(active again within H days) after the cutoff on the test users (auc, brier, ece, positive_rate), the same on the
validation users (``valid``), the recency / frequency / BG/NBD baselines, a reliability table, mean survival
curves S(t) (population and per history-length segment, with ``observed_at_horizon`` = the share of users with no
event within H, which the curves' value at H should match) and the half-life distribution. Every part is optional
here: a missing or malformed part renders as "n/a" / "not available" instead of failing.
"""
from __future__ import annotations

import math
from typing import Any

from .page import _dict, _esc, _fmt_int, _fmt_metric, _na, _not_available, _num, _table
from .plots import _draw_decay_half_life, _draw_decay_reliability, _draw_decay_survival, _Plots

DECAY_BASELINE_LABELS = {"recency": "recency", "frequency": "frequency", "bgnbd": "BG/NBD"}
DECAY_NOT_AVAILABLE = ("Decay evaluation: not available — it needs a time split at the ETL "
                       "(--split time --cutoff DATE --horizon-days H); leave-one-out data has no end of observation")


def _nums(x: Any) -> list[float | None]:
    """A JSON list as floats (None for missing / NaN / non-numeric entries); [] when not a list."""
    return [_num(v) for v in x] if isinstance(x, list) else []


def _pct(x: Any) -> str:
    v = _num(x)
    return _na() if v is None else f"{v * 100:.1f}%"


def _fmt_plain(x: Any, spec: str = ".4f") -> str:
    """Plain text (for captions and plot labels, escaped later): the number, or "n/a"."""
    v = _num(x)
    return "n/a" if v is None else format(v, spec)


def _fmt_plain_int(x: Any) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{int(round(v)):,}"


def _days(x: Any) -> str:
    v = _num(x)
    return "H" if v is None else f"{v:g}"


def _at(days: list[float | None], curve: list[float | None], t: float) -> float | None:
    """The curve at t days: the grid value, or linear interpolation in log(days) between its neighbours."""
    pts = sorted((d, c) for d, c in zip(days, curve) if d is not None and d > 0 and c is not None)
    for (d0, c0), (d1, c1) in zip(pts, pts[1:]):
        if d0 <= t <= d1:
            return c0 if d1 == d0 else c0 + (c1 - c0) * (math.log(t) - math.log(d0)) / (math.log(d1) - math.log(d0))
    return next((c for d, c in pts if d == t), None)


def _scores_table(decay: dict, model_name: str) -> str:
    """Model vs baselines, AUC (higher is better) and Brier (lower is better); the best of each column in bold."""
    rows_in = [(f"{_esc(model_name)} (model)", decay, "model")]
    baselines = _dict(decay.get("baselines"))
    names = [n for n in DECAY_BASELINE_LABELS if n in baselines]
    names += [n for n in baselines if n not in DECAY_BASELINE_LABELS]
    rows_in += [(_esc(DECAY_BASELINE_LABELS.get(str(n), n)), _dict(baselines[n]), "") for n in names]
    best = {}
    for key, pick in (("auc", max), ("brier", min)):
        vals = [v for v in (_num(_dict(d).get(key)) for _, d, _ in rows_in) if v is not None]
        if vals:
            best[key] = pick(vals)
    rows = []
    for label, d, _ in rows_in:
        cells = [label]
        for key in ("auc", "brier"):
            v = _num(_dict(d).get(key))
            cells.append(f"<b>{_fmt_metric(v)}</b>" if v is not None and v == best.get(key) else _fmt_metric(v))
        rows.append(cells)
    return _table(["", "AUC", "Brier"], rows, [c for _, _, c in rows_in], num_cols={1, 2})


def _section_decay(metrics: dict, run: dict, plots: _Plots) -> str:
    out = ['<h2 id="decay">Interest decay</h2>']
    decay = metrics.get("decay")
    if not isinstance(decay, dict) or not decay:
        out.append(f'<p class="na">{_esc(DECAY_NOT_AVAILABLE)}</p>')
        return "".join(out)
    horizon = _num(decay.get("horizon_days"))
    h = _days(horizon)
    out.append(f"<p>P(active again within {_esc(h)} days) after the cutoff, for {_fmt_int(decay.get('n_users'))} "
               f"users; {_pct(decay.get('positive_rate'))} were active.</p>")

    # --- scores: model vs baselines
    out.append("<h3>Model vs baselines</h3>")
    out.append(_scores_table(decay, str(run.get("model", "model"))))
    cal = _dict(decay.get("calibration"))
    raw = _dict(cal.get("uncalibrated"))
    out.append(f'<p class="note"><b style="color:#b42318">Bold</b> = best in the column (AUC: higher is better, '
               f"Brier: lower is better); the model row is shaded. Model ECE {_fmt_metric(decay.get('ece'))} "
               f"(10 equal-width bins). The model's hazard rates are scaled by "
               f"{_fmt_metric(cal.get('hazard_scale'))}, fitted on the {_fmt_int(cal.get('n_users'))} users of the "
               f"validation window before the cutoff (uncalibrated: Brier {_fmt_metric(raw.get('brier'))}, ECE "
               f"{_fmt_metric(raw.get('ece'))}; ranks, hence AUC, unchanged). Recency and frequency are calibrated "
               "on the same users; BG/NBD is fitted on the test users' histories.</p>")

    # --- survival curves
    surv = _dict(decay.get("survival"))
    days = _nums(surv.get("days"))
    pop = _nums(surv.get("all"))
    curves = [(f"all users (n={_fmt_plain_int(decay.get('n_users'))})", pop)]
    for name, seg in _dict(surv.get("segments")).items():
        seg = _dict(seg)
        curves.append((f"{name} (n={_fmt_plain_int(seg.get('n_users'))})", _nums(seg.get("curve"))))
    observed = _num(surv.get("observed_at_horizon"))
    observed_note = ""
    if observed is None and _num(decay.get("positive_rate")) is not None and "observed_at_horizon" not in surv:
        observed = 1 - _num(decay.get("positive_rate"))  # older metrics.json: the same share, from the labels
        observed_note = " (from 1 − the active share: this metrics.json predates observed_at_horizon)"
    plots.make("decay_survival", _draw_decay_survival(days, curves, horizon, observed), size=(9.6, 3.8))
    caption = ("Mean S(t) over users, each conditional on their silence since their last event; one curve per "
               "history-length segment. Diamond = observed at H: the share of users with no event within "
               f"{h} days")
    model_at_h = _at(days, pop, horizon) if horizon is not None else None
    if observed is not None:
        caption += f", {observed:.4f}{observed_note}"
        if model_at_h is not None:
            caption += f"; the population curve at H is {model_at_h:.4f}"
    out.append("<h3>Survival curves</h3>")
    out.append(plots.html("decay_survival", caption + ".") or _not_available("Survival curves"))

    # --- reliability
    rel = _dict(decay.get("reliability"))
    plots.make("decay_reliability", _draw_decay_reliability(
        _nums(rel.get("edges")), _nums(rel.get("count")), _nums(rel.get("mean_pred")), _nums(rel.get("rate"))),
        size=(9.6, 4.0))
    out.append("<h3>Calibration</h3>")
    out.append(plots.html("decay_reliability", f"Reliability of P(active within {h} days) on the test users: mean "
                          "predicted vs observed share per probability bin (empty bins skipped), dashed = perfect "
                          f"calibration; ECE {_fmt_plain(decay.get('ece'))}.")
               or _not_available("Reliability table"))

    # --- half-life
    hl = _dict(decay.get("half_life_days"))
    beyond, median = _num(hl.get("beyond_365_days")), _num(hl.get("median"))
    plots.make("decay_half_life", _draw_decay_half_life(
        _nums(hl.get("histogram_edges")), _nums(hl.get("histogram_counts")), median, beyond))
    out.append("<h3>Half-life</h3>")
    out.append(plots.html("decay_half_life", "Users' interest half-life (days until the chance of a next event "
                          f"reaches one half), log-spaced bins: median {_fmt_plain(median, '.3g')} days; "
                          f"{'n/a' if beyond is None else f'{beyond:.1%}'} of users beyond 365 days.")
               or _not_available("Half-life distribution"))
    return "".join(out)

