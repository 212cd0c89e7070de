"""Refit of the survival head on the selected encoder, after training and before the model is final.

The checkpoint is chosen by next-item validation (eval.select). At that step the jointly trained survival head can
be far from fitted: its MLP needs many more steps than next-item training runs to learn how the hazards depend on
the whole-history counts, and on data whose next-item curve is flat the chosen step is arbitrary for it. And the
encoder's state can hurt it: a user's gaps are mostly short ones inside a session and there is one silent tail per
user, so an MLP on a D-dimensional state fits the training gaps better while its P(active within H) gets worse
(on the synthetic bench the state-reading refit loses validation log loss from its first epoch on; the counts-only
one gains). So, with the chosen encoder frozen, two candidates train on a sample of training positions (hidden
states computed once): the head as built (state and counts) and the head on the counts alone (its state_gate at
0). Each keeps the epoch whose P(active within H) on decay_valid has the lowest log loss (early stopping with
patience), and the best of the jointly trained head, the two candidates wins: a refit that does not help changes
nothing.

Plain torch on the driver (no Ray, no DeepSpeed): the head is a small MLP and the sample is bounded
(model.decay_refit_positions scored positions).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from interest_core import decay
from interest_core.batches import collate, read_decay_split, train_row_groups
from interest_core.binary import auc
from interest_core.config import Config

from .models.heads import decay_features

BATCH = 4096  # positions per optimizer step of the refit
MAX_VALID_ROWS = 100_000  # decay_valid rows that judge the epochs
PATIENCE = 10  # epochs without a better valid log loss before the refit stops


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


@torch.no_grad()
def _training_positions(model, data_dir: Path, max_len: int, budget: int, batch_rows: int, seed: int):
    """(hidden (N, D), features (N, F), gap (N,), censored (N,)) of the scored positions of training windows read
    row group by row group in a seeded random order until `budget` positions."""
    head = model.heads["decay"]
    parts, n = [], 0
    for table in train_row_groups(data_dir, seed):
        for start in range(0, table.num_rows, batch_rows):
            batch = collate(table.slice(start, batch_rows), max_len, targets=True)
            got = head.targets(model.encode(batch), batch)
            parts.append(got)
            n += got[2].numel()
            if n >= budget:
                break
        if n >= budget:
            break
    return tuple(torch.cat([p[k] for p in parts])[:budget] for k in range(4))


@torch.no_grad()
def _valid_rows(model, data_dir: Path, max_len: int, batch_rows: int):
    """(hidden (M, D), features (M, F), elapsed (M,) seconds, label (M,)) of decay_valid rows at their last event."""
    rows = read_decay_split(data_dir, "valid", max_rows=MAX_VALID_ROWS)
    n = len(rows["label"])
    buy = model.heads["decay"].buy_type
    hs, fs = [], []
    for start in range(0, n, batch_rows):
        batch = collate({k: v[start:start + batch_rows] for k, v in rows.items()}, max_len)
        hs.append(model.encode(batch)[:, -1])
        fs.append(decay_features(batch, buy)[:, -1])
    return torch.cat(hs), torch.cat(fs), decay.elapsed_s(rows), np.asarray(rows["label"], dtype=np.float64)


def refit_decay_head(model, data_dir: str | Path, cfg: Config, horizon_days: float) -> dict:
    """Refits model.heads["decay"] in place (the rest of the model frozen); returns what the run records: the sample
    sizes, the candidate chosen ("joint" = none helped), each candidate's best log loss and epochs, and the
    decay_valid log loss and AUC of the joint head and of the chosen one."""
    data_dir = Path(data_dir)
    head = model.heads["decay"]
    model.eval()
    max_len, rows = model.args.max_len, cfg.eval.batch_size
    h, f, gap, cens = _training_positions(model, data_dir, max_len, cfg.model.decay_refit_positions, rows,
                                          cfg.train.seed)
    vh, vf, elapsed, label = _valid_rows(model, data_dir, max_len, rows)
    horizon_s = horizon_days * decay.DAY_S

    def judge() -> tuple[float, float]:
        head.eval()
        with torch.no_grad():
            p = decay.p_active_within(head.hazards_at(vh, vf).numpy(), elapsed, horizon_s)
        return _log_loss(p, label), auc(p, label)

    joint = judge()
    start_state = copy.deepcopy(head.state_dict())
    best, best_state, chosen, tried = joint, start_state, "joint", {}
    n = gap.numel()
    for name, gate in (("state+counts", 1.0), ("counts", 0.0)):
        head.load_state_dict(start_state)
        head.state_gate.fill_(gate)
        got, state, epochs, best_epoch = _train(head, h, f, gap, cens, judge, cfg)
        tried[name] = {"valid_log_loss": got[0], "epochs": epochs, "best_epoch": best_epoch}
        if got[0] < best[0]:
            best, best_state, chosen = got, state, name
    head.load_state_dict(best_state)
    head.eval()
    clean = lambda x: None if not math.isfinite(x) else x  # noqa: E731
    return {"positions": int(n), "valid_users": int(len(label)), "chosen": chosen, "candidates": tried,
            "valid_log_loss": {"joint": joint[0], "refit": best[0]},
            "valid_auc": {"joint": clean(joint[1]), "refit": clean(best[1])}}


def _train(head, h, f, gap, cens, judge, cfg: Config):
    """Trains the head for at most model.decay_refit_epochs epochs; (best (log loss, AUC), its state dict, epochs
    run, best epoch), epoch 0 being the head as it came in."""
    best, best_state, best_epoch, epoch = judge(), copy.deepcopy(head.state_dict()), 0, 0
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.train.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    n = gap.numel()
    for epoch in range(1, cfg.model.decay_refit_epochs + 1):
        head.train()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            loss = head.nll(head(h[idx], f[idx]), gap[idx], cens[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        got = judge()
        if got[0] < best[0]:
            best, best_state, best_epoch = got, copy.deepcopy(head.state_dict()), epoch
        elif epoch - best_epoch >= PATIENCE:
            break
    return best, best_state, epoch, best_epoch
