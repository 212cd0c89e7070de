"""The next-action head on the held-out events (action_test/, contract.py): metrics.json["event_type"] against its
classical baselines, and the per-user P(next event is a buy) that the profiles carry.

Every held-out event is predicted from what precedes it (the window's events before it). Baselines:
  frequency    the types' shares in the data (the head's prior): AUC 0.5 by construction, its log loss the bar
  transition   P(next type | current type), counted on a sample of the training windows (first-order Markov,
               add-one smoothed), the classical next-action model
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from interest_core.batches import collate, read_head, train_row_groups
from interest_core.binary import auc, roc_points
from interest_core.contract import PAD_ID, TRAIN_COLUMNS, split_files

MAX_WINDOWS = 200_000  # action_test windows scored: the first in stored order (metrics: windows_scored / _total)
TRANSITION_SAMPLE = 2_000_000  # training transitions counted for the transition baseline


def transition_matrix(data_dir: str | Path, num_types: int, max_len: int, seed: int) -> np.ndarray:
    """(E, E) P(next type | current type) from scored training targets (rows: current, columns: next)."""
    counts = np.ones((num_types, num_types))  # add-one
    counts[:, PAD_ID] = 0
    seen = 0
    for table in train_row_groups(data_dir, seed, ["items", "event_types", "ts", "first_target"]):
        b = collate(table, max_len, targets=True)
        keep = b["target_event_types"] > 0
        np.add.at(counts, (b["event_types"][keep].numpy(), b["target_event_types"][keep].numpy()), 1)
        seen += int(keep.sum())
        if seen >= TRANSITION_SAMPLE:
            break
    return counts / counts.sum(1, keepdims=True)


def _summary(p: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    """macro / per-type one-vs-rest AUC and log loss of probabilities p (N, E) for types y (N,)."""
    per = {names[t]: auc(p[:, t], y == t) for t in range(1, p.shape[1]) if 0 < int((y == t).sum()) < len(y)}
    ll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))
    return {"macro_auc": float(np.mean(list(per.values()))) if per else None, "per_type_auc": per, "log_loss": ll}


@torch.no_grad()
def action_metrics(model, data_dir: str | Path, max_len: int, batch_size: int, event_types: list[str],
                   seed: int = 0) -> dict | None:
    """metrics.json["event_type"]: the head's calibrated probabilities on every held-out event (macro and
    per-type AUC, log loss, accuracy), its balanced decisions (balanced accuracy, confusion matrix), the
    baselines, and per-type ROC points for the report. event_types: the vocabulary's names by id, "<pad>" first
    (manifest["vocab"]["event_types"]). None without the head or action_test rows."""
    if "event_type" not in model.heads or not (Path(data_dir) / "action_test").is_dir():
        return None
    head = model.heads["event_type"]
    model.eval()
    files = split_files(data_dir, "action_test")
    table = read_head(files, TRAIN_COLUMNS, MAX_WINDOWS)
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    probs, balanced, ys, cur, users = [], [], [], [], []
    for start in range(0, table.num_rows, batch_size):
        part = table.slice(start, batch_size)
        b = collate(part, max_len, targets=True)
        hidden = model.encode(b)
        keep = b["target_event_types"] > 0
        probs.append(head.probs(hidden, b)[keep].double().numpy())
        balanced.append(head(hidden, b)[keep][:, 1:].argmax(-1).numpy() + 1)
        ys.append(b["target_event_types"][keep].numpy())
        cur.append(b["event_types"][keep].numpy())
        users += np.repeat(np.asarray(part["user_id"].to_pylist(), dtype=object), keep.sum(1).numpy()).tolist()
    if not ys or not sum(len(y) for y in ys):
        return None
    p, y, bal, c = np.concatenate(probs), np.concatenate(ys), np.concatenate(balanced), np.concatenate(cur)
    names = list(event_types)  # the vocabulary's names, "<pad>" first
    prior = head.log_prior.exp().double().numpy()
    prior[PAD_ID] = 0.0
    trans = transition_matrix(data_dir, len(names), max_len, seed)
    model_part = _summary(p, y, names)
    present = [t for t in range(1, len(names)) if (y == t).any()]
    confusion = np.zeros((len(names) - 1, len(names) - 1), dtype=np.int64)
    np.add.at(confusion, (y - 1, bal - 1), 1)
    return {
        **model_part,
        "baseline_log_loss": _summary(np.broadcast_to(prior, p.shape), y, names)["log_loss"],
        "accuracy": float((p[:, 1:].argmax(-1) + 1 == y).mean()),
        "balanced_accuracy": float(np.mean([(bal[y == t] == t).mean() for t in present])),
        "majority_class_accuracy": float(np.bincount(y).max() / len(y)),
        "n_targets": int(len(y)), "n_users": len(set(users)),
        "windows_scored": int(table.num_rows), "windows_total": int(total),
        "baselines": {"frequency": _summary(np.broadcast_to(prior, p.shape), y, names),
                      "transition": _summary(trans[c], y, names)},
        "confusion": {"types": names[1:], "counts": confusion.tolist()},
        "roc": {names[t]: roc_points(p[:, t], y == t) for t in present if (y != t).any()},
    }


@torch.no_grad()
def p_next(model, hidden: torch.Tensor, batch: dict[str, torch.Tensor], type_id: int) -> np.ndarray | None:
    """(B,) calibrated P(the next event has type_id) after each row's most recent event; None without the head."""
    if "event_type" not in model.heads or type_id <= 0:
        return None
    return model.heads["event_type"].probs(hidden, batch)[:, -1, type_id].double().numpy()
