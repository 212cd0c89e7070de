"""The "Interests, profiles and segments" section of the run report.

From ``metrics.json["tags"]`` (interest tags against planted interests, synthetic data only) and ``RUN/export.json``
(written by ``interest export``: the segment choice, a 2-D map of user embeddings, a sample of profiles) with the
export's ``segments.parquet``. Every part is optional: what is missing renders as "not available".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .page import _dict, _esc, _fmt_int, _fmt_metric, _not_available, _num, _table
from .plots import PALETTE, _Plots

SEGMENT_COLUMNS = ["segment", "users", "share", "mean_events", "mean_days_since_last", "purchase_rate",
                   "mean_p_buy_next", "mean_churn_risk", "top_categories", "representative_items"]


def _draw_map(m: dict) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        xs, ys, seg = m.get("x"), m.get("y"), m.get("segment")
        if not (isinstance(xs, list) and isinstance(ys, list) and isinstance(seg, list)) or not xs \
                or not len(xs) == len(ys) == len(seg):
            return False
        ax = fig.add_subplot()
        for s in sorted({int(v) for v in seg}):
            pts = [(x, y) for x, y, g in zip(xs, ys, seg) if int(g) == s]
            ax.scatter([_num(p[0]) or 0 for p in pts], [_num(p[1]) or 0 for p in pts], s=6, alpha=0.6,
                       color=PALETTE[s % len(PALETTE)], label=f"segment {s}")
        ev = [(_num(v) or 0) for v in (m.get("explained_variance") or [])] + [0, 0]
        ax.set_xlabel(f"first principal component ({ev[0]:.0%} of variance)")
        ax.set_ylabel(f"second ({ev[1]:.0%})")
        ax.set_title("User embeddings, coloured by segment", fontsize=11, loc="left")
        ax.legend(fontsize=7, markerscale=2, loc="best")
        return True
    return draw


def _tags_table(tags: dict) -> str:
    base = _dict(tags.get("baselines"))
    rows = []
    for name, label, t in [("model", "profiles' tags", tags)] + [
            (n, lab, _dict(base.get(n))) for n, lab in (("history", "history alone (no model)"),
                                                        ("frequency", "most frequent categories"),
                                                        ("popularity", "catalogue's most popular"))]:
        by = _dict(t.get("by_level"))
        rows.append([_esc(label), _fmt_metric(t.get("precision@3")),
                     _fmt_metric(_dict(t.get("migrated")).get("precision@3"))]
                    + [_fmt_metric(by.get(str(lv))) for lv in range(1, int(_num(tags.get("levels")) or 0) + 1)])
    levels = [f"level {lv}" for lv in range(1, int(_num(tags.get("levels")) or 0) + 1)]
    return _table(["tags", "precision@3", "migrated users"] + levels, rows, ["model"] + [""] * (len(rows) - 1))


def item_titles(data_dir: object) -> dict[str, str]:
    """item id -> title in the run's data (items/), so the report names items in words; {} without titles or when
    the data cannot be read here."""
    try:
        import pyarrow.parquet as pq

        t = pq.read_table(Path(str(data_dir)) / "items", columns=["item_id", "title"]).to_pydict()
    except Exception:  # noqa: BLE001 - a report shows what it can: the ids alone
        return {}
    return {str(i): str(x) for i, x in zip(t["item_id"], t["title"]) if x}


def _items(ids: list, titles: dict[str, str], n: int) -> str:
    """The first n items as 'title (id)', or the id of an item without a title."""
    return _esc(", ".join(f"{titles[str(i)]} ({i})" if str(i) in titles else str(i) for i in ids[:n]))


def _segments_table(path: Path, titles: dict[str, str]) -> str:
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(path, columns=SEGMENT_COLUMNS).to_pylist()
    except Exception as exc:  # noqa: BLE001 - a report shows what it can
        return _not_available("Segment table", f"{path} could not be read: {exc}")
    body = [[_fmt_int(r["segment"]), _fmt_int(r["users"]), f"{(_num(r['share']) or 0):.1%}",
             _fmt_metric(r["mean_events"]), _fmt_metric(r["mean_days_since_last"]), _fmt_metric(r["purchase_rate"]),
             _fmt_metric(r["mean_p_buy_next"]), _fmt_metric(r["mean_churn_risk"]),
             _esc(", ".join(r["top_categories"][:3])), _items(r["representative_items"], titles, 3)] for r in rows]
    return _table(["segment", "users", "share", "events / user", "days since last", "purchase rate",
                   "P(buy next)", "churn risk", "top categories", "representative items"], body)


def _section_profiles(metrics: dict | None, export: dict | None, plots: _Plots,
                      titles: dict[str, str] | None = None) -> str:
    """titles: item_titles of the run's data (items named in words beside their ids)."""
    titles = titles or {}
    out = ['<h2 id="profiles">Interests, profiles and segments</h2>']
    tags = _dict((metrics or {}).get("tags"))
    if tags:
        settings = _dict(tags.get("settings"))
        out.append(f"<p>Interest tags against the interests the synthetic data planted, "
                   f"{_fmt_int(tags.get('n_users'))} test users (precision@3 with k = min(3, planted interests)). "
                   f"A tag's weight: {_fmt_metric(settings.get('predicted_weight'))} from the model's next-item "
                   f"distribution summed by category, the rest from the whole history's categories, each event "
                   f"weighted by half every {_esc(settings.get('half_life_days'))} days of age.</p>")
        out.append(_tags_table(tags))
    else:
        out.append(_not_available("Interest-tag precision", "the data set has no planted interests (real data)"))
    if not isinstance(export, dict) or not export:
        out.append(_not_available("Profiles and segments", "run `interest export --run RUN --output DIR`"))
        return "".join(out)
    seg = _dict(export.get("segments"))
    sil = _dict(seg.get("silhouette"))
    out.append(f"<p>{_fmt_int(export.get('profiles'))} profiles in {_esc(export.get('output'))}; "
               f"{_fmt_int(seg.get('k'))} k-means segments (chosen by {_esc(seg.get('chosen_by'))} on "
               f"{_fmt_int(seg.get('sample_users'))} users; silhouette "
               + ", ".join(f"k={_esc(k)}: {_fmt_metric(v)}" for k, v in sil.items()) + ").</p>")
    path = Path(str(export.get("output", ""))) / "segments.parquet"
    out.append(_segments_table(path, titles) if path.is_file() else _not_available("Segment table", f"{path} missing"))
    plots.make("segments_map", _draw_map(_dict(export.get("embedding_map"))), size=(6.4, 5.0))
    out.append(plots.html("segments_map", "A 2-D principal-component projection of the users k-means was fitted "
                          "on.") or "")
    sample = export.get("profile_sample")
    if isinstance(sample, list) and sample:
        body = [[_esc(str(r.get("user_id", ""))[:12] + "…"), _fmt_int(r.get("n_events")),
                 _esc(", ".join(r.get("interest_tags") or [])), _items(r.get("top_item_ids") or [], titles, 5),
                 _fmt_metric(r.get("p_buy_next")), _fmt_int(r.get("segment")), _fmt_metric(r.get("churn_risk")),
                 _migration_cell(r)]
                for r in sample if isinstance(r, dict)]
        out.append("<p>A sample of profiles (pseudonyms, shortened):</p>")
        out.append(_table(["user", "events", "interest tags", "top recommendations", "P(buy next)", "segment",
                           "churn risk", "migrated (before → after)"], body))
    return "".join(out)


def _migration_cell(r: dict) -> str:
    """The profile's migration flag, with its top category before and after when flagged; n/a without drift rows."""
    flag = r.get("migrated")
    if flag is None:
        return "n/a"
    if not flag:
        return "no"
    before, after = (r.get("categories_before") or [""])[0], (r.get("categories_after") or [""])[0]
    return _esc(f"yes ({before} → {after})")
