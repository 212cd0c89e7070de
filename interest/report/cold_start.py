"""The "Cold start" section of the run report, from ``metrics.json["cold_start"]`` (and ``["ablation"]`` when a
bench or a comparison wrote one).

``interest evaluate`` scores the test users whose target item never occurred in training (``cold_items``: new
items, or the ``--cold-items`` holdout) and the users with at most ``data.cold_user_max_events`` events
(``cold_users``) with the model and every baseline, full ranking over the catalog. Missing parts render as "n/a".
"""
from __future__ import annotations

from typing import Any, Callable

from .page import _dict, _esc, _fmt_int, _fmt_metric, _not_available, _num, _table
from .plots import MODEL_COLOR, PALETTE, _grouped_bars, _Plots

SEGMENTS = {"cold_items": "cold items (target never trained)", "cold_users": "cold users (few events)"}
SCORER_ORDER = ("model", "content_knn", "popularity", "recent_popularity", "cooccurrence", "repeat_last",
                "repeat_last_category", "random")
SCORER_LABELS = {"model": "model", "content_knn": "content kNN (text)", "random": "uniform random"}


def _scorers(cs: dict) -> list[str]:
    names = {n for seg in SEGMENTS for n in _dict(_dict(cs.get(seg)).get("scorers"))}
    return [n for n in SCORER_ORDER if n in names] + sorted(names - set(SCORER_ORDER))


def _draw(cs: dict, names: list[str], key: str) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        groups = [s for s in SEGMENTS if _dict(cs.get(s)).get("users")]
        series = []
        for i, n in enumerate(names):
            vals = [_num(_dict(_dict(_dict(cs.get(s)).get("scorers")).get(n)).get(key)) for s in groups]
            series.append((SCORER_LABELS.get(n, n), vals, MODEL_COLOR if n == "model" else PALETTE[i % len(PALETTE)]))
        return _grouped_bars(fig, [SEGMENTS[g] for g in groups], series, f"Cold start: {key.upper()} (full ranking)",
                             key.upper())
    return draw


def _section_cold_start(metrics: dict, plots: _Plots) -> str:
    out = ['<h2 id="cold-start">Cold start</h2>']
    cs = metrics.get("cold_start")
    if not isinstance(cs, dict) or not any(_dict(cs.get(s)).get("users") for s in SEGMENTS):
        out.append(_not_available("Cold-start evaluation (no test user in a cold segment)"))
        return "".join(out)
    names = _scorers(cs)
    ks = sorted({k for s in SEGMENTS for v in _dict(_dict(cs.get(s)).get("scorers")).values()
                 for k in _dict(v) if k.startswith("hr@")}, key=lambda k: int(k.split("@")[1]))
    key = "hr@50" if "hr@50" in ks else (ks[-1] if ks else "hr@50")
    ndcg = "ndcg@" + key.split("@")[1]
    frac = _num(cs.get("cold_items_fraction")) or 0.0
    out.append(f"<p>Full ranking over the catalog. Cold items: test targets with no training event "
               f"({'the --cold-items holdout of ' + _fmt_metric(frac) + ' of the items, and ' if frac else ''}"
               f"items new after training); cold users: users with few events.</p>")
    for seg, label in SEGMENTS.items():
        c = _dict(cs.get(seg))
        rows = [[_esc(SCORER_LABELS.get(n, n)), _fmt_metric(_dict(_dict(c.get("scorers")).get(n)).get(key)),
                 _fmt_metric(_dict(_dict(c.get("scorers")).get(n)).get(ndcg))] for n in names]
        out.append(f"<h3>{_esc(label)}: {_fmt_int(c.get('users'))} users</h3>")
        out.append(_table(["scorer", key.upper(), ndcg.upper()], rows) if c.get("users") else
                   _not_available(label))
    plots.make("cold_start", _draw(cs, names, key), size=(8.4, 3.6))
    out.append(plots.html("cold_start", f"{key.upper()} of the model and the baselines on the cold segments.") or "")
    ab = metrics.get("ablation")
    if isinstance(ab, dict) and ab.get("variants"):
        rows = []
        for name, v in _dict(ab.get("variants")).items():
            v = _dict(v)
            rows.append([_esc(name), _fmt_metric(_dict(v.get("all")).get(ndcg)),
                         _fmt_metric(_dict(v.get("cold_items")).get(key)),
                         _fmt_metric(_dict(v.get("cold_users")).get(key))])
        out.append(f"<h3>Ablation ({_esc(ab.get('data', ''))})</h3>")
        out.append(_table(["item representation", f"{ndcg.upper()} (all)", f"{key.upper()} cold items",
                           f"{key.upper()} cold users"], rows))
    return "".join(out)
