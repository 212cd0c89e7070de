"""The HTML side of the run report: CSS, page assembly, escaping, number formatting and table builders.

Every helper that turns a value from the run files into HTML escapes it; missing, NaN and null values render
as "n/a" (``_na``) instead of failing.
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

PROTOCOL_LABELS = {
    "full": "full ranking",
    "full_exclude_seen": "full ranking, seen items excluded",
    "sampled100": "sampled: target + 100 negatives",
}
_METRIC_RE = re.compile(r"^(hr|ndcg|mrr)@(\d+)$")
_METRIC_ORDER = {"hr": 0, "ndcg": 1, "mrr": 2}
_METRIC_LABEL = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR"}
DEFAULT_SELECTION_METRIC = "ndcg@10"
"""Checkpoint-selection metric of runs whose run.json predates ``selection`` (they carry ``best_valid_ndcg@10``)."""

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
    "Decay (time split): per user p = P(an event within H days after the cutoff | silent since the last event), "
    "y = 1 if one happened; AUC = P(p of a random active user > p of a random inactive one), ties count one half; "
    "Brier = mean (p - y)^2; ECE = sum over non-empty equal-width p bins of count / N * |mean p - share active|. "
    "S(t) = P(no event within t days | silent so far); half-life = the smallest t with S(t) <= 1/2.",
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


def _metric_k(key: str) -> int | None:
    """K of an hr/ndcg/mrr@K key, None for anything else."""
    m = _METRIC_RE.match(key)
    return int(m.group(2)) if m else None


def _headline_k(keys: list[str], preferred: int) -> int:
    """``preferred`` (the selection metric's K) when some key has it, else the middle K of the keys."""
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


def _not_available(what: str, problem: str | None = None) -> str:
    text = f"{what}: not available" + (f" ({problem})" if problem else "")
    return f'<p class="na">{_esc(text)}</p>'


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


# ------------------------------------------------------------------------------------------- page

NAV = (("summary", "Summary"), ("training", "Training"), ("evaluation", "Evaluation"), ("baselines", "Baselines"),
       ("segments", "Segments"), ("throughput", "Throughput"), ("decay", "Decay"), ("event-type", "Event type"),
       ("migration", "Migration"), ("cold-start", "Cold start"), ("profiles", "Profiles"),
       ("definitions", "Definitions"))


def render_page(run_dir: Path, run: dict, body: list[str]) -> str:
    """The whole HTML document: title, subtitle, navigation, the section bodies (HTML) and the definitions."""
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in NAV)
    title = f"Run report — {run_dir.resolve().name}"
    subtitle = " · ".join(x for x in (
        f"model {_esc(run.get('model', 'n/a'))}",
        f"finished {_esc(run['finished'])}" if run.get("finished") else "",
        f"{_fmt_int(run.get('world_size'))} rank(s)" if _num(run.get("world_size")) is not None else "",
    ) if x)
    footer = ('<footer id="definitions"><b>Metric definitions</b><ol>'
              + "".join(f"<li>{_esc(d)}</li>" for d in DEFINITIONS)
              + "</ol>Generated by <code>interest report</code> from the JSON files in the run directory.</footer>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1><p class=\"sub\">{subtitle}</p><nav>{nav}</nav>"
        + "".join(body) + footer + "</main></body></html>\n"
    )
