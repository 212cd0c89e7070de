"""The "Next action" section of the run report, from ``metrics.json["event_type"]``.

``interest evaluate`` scores the next-action head on every held-out event (action_test/): macro and per-type AUC,
log loss against the frequency and transition baselines, accuracy, balanced accuracy, a confusion matrix of the
balanced decisions and per-type ROC points. Every part is optional here: a missing or malformed part renders as
"n/a" / "not available" instead of failing.
"""
from __future__ import annotations

from typing import Any, Callable

from .page import _dict, _esc, _fmt_int, _fmt_metric, _not_available, _num, _table
from .plots import PALETTE, _mpl_text, _Plots, unit_square


def _draw_roc(roc: dict) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        curves = [(name, _dict(c).get("fpr"), _dict(c).get("tpr")) for name, c in roc.items()]
        curves = [(n, f, t) for n, f, t in curves if isinstance(f, list) and isinstance(t, list) and len(f) == len(t)]
        if not curves:
            return False
        ax = fig.add_subplot()
        for i, (name, fpr, tpr) in enumerate(curves):
            ax.plot([_num(x) or 0 for x in fpr], [_num(x) or 0 for x in tpr], color=PALETTE[i % len(PALETTE)],
                    linewidth=1.5, label=_mpl_text(name))
        unit_square(ax, "chance", "false positive rate", "true positive rate",
                    "Next event type: ROC per type (one vs rest)", "lower right")
        return True
    return draw


def _draw_confusion(types: list, counts: list) -> Callable[[Any], bool]:
    def draw(fig: Any) -> bool:
        n = len(types)
        if not n or len(counts) != n or any(not isinstance(r, list) or len(r) != n for r in counts):
            return False
        rows = [[_num(v) or 0.0 for v in r] for r in counts]
        share = [[v / (sum(r) or 1) for v in r] for r in rows]  # per true type: recall on the diagonal
        ax = fig.add_subplot()
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{share[i][j]:.2f}\n({int(rows[i][j]):,})", ha="center", va="center", fontsize=7,
                        color="white" if share[i][j] > 0.6 else "black")
        labels = [_mpl_text(t) for t in types]
        ax.set_xticks(range(n), labels)
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted (balanced decision)")
        ax.set_ylabel("true next type")
        ax.set_title("Confusion (share of each true type)", fontsize=11, loc="left")
        fig.colorbar(im, ax=ax, fraction=0.046)
        return True
    return draw


def _section_event_type(metrics: dict, plots: _Plots) -> str:
    out = ['<h2 id="event-type">Next action</h2>']
    et = metrics.get("event_type")
    if not isinstance(et, dict) or not et:
        out.append(_not_available("Next-action evaluation"))
        return "".join(out)
    out.append(f"<p>The type of the next event, predicted before it happens, on {_fmt_int(et.get('n_targets'))} "
               f"held-out events of {_fmt_int(et.get('n_users'))} users.</p>")
    base = _dict(et.get("baselines"))
    rows = [["model", _fmt_metric(et.get("macro_auc")), _fmt_metric(et.get("log_loss"))]]
    for name, label in (("transition", "transition P(next | current type)"), ("frequency", "type frequencies")):
        b = _dict(base.get(name))
        rows.append([_esc(label), _fmt_metric(b.get("macro_auc")), _fmt_metric(b.get("log_loss"))])
    out.append(_table(["predictor", "macro AUC", "log loss"], rows, ["model"] + [""] * (len(rows) - 1)))
    per = _dict(et.get("per_type_auc"))
    trans = _dict(_dict(base.get("transition")).get("per_type_auc"))
    if per:
        out.append(_table(["type", "AUC (model)", "AUC (transition)"],
                          [[_esc(k), _fmt_metric(v), _fmt_metric(trans.get(k))] for k, v in per.items()]))
    out.append(f'<p class="note">Accuracy {_fmt_metric(et.get("accuracy"))} (most likely type; the majority type '
               f"alone scores {_fmt_metric(et.get('majority_class_accuracy'))}), balanced accuracy "
               f"{_fmt_metric(et.get('balanced_accuracy'))} (mean recall per type of the balanced decision).</p>")
    plots.make("action_roc", _draw_roc(_dict(et.get("roc"))), size=(5.6, 4.6))
    conf = _dict(et.get("confusion"))
    plots.make("action_confusion", _draw_confusion(conf.get("types") or [], conf.get("counts") or []),
               size=(5.6, 4.6))
    out.append(plots.html("action_roc", "ROC of each type against the rest, calibrated probabilities.") or "")
    out.append(plots.html("action_confusion", "Balanced decisions (argmax of the prior-free logits) against the "
                          "true next type; rows sum to 1.") or "")
    return "".join(out)
