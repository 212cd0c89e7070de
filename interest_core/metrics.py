"""Full-ranking next-item metrics, exact and mergeable across distributed ranks.

Definitions:

- For one user with candidate scores s (over a candidate set C containing the target t):
  rank = 1 + #{j in C, j != t : s_j > s_t} + #{j in C, j != t : s_j == s_t}
  (ties are counted against the model: a constant scorer gets the worst rank, never a lucky one).
- HR@K = 1[rank <= K]; NDCG@K = 1/log2(rank + 1) if rank <= K else 0 (one relevant item, so IDCG = 1);
  MRR@K = 1/rank if rank <= K else 0. Reported values are means over users.
- If the target is not rankable (target id 0 padding or 1 OOV, i.e. not in C) the user counts with
  rank = infinity (all metrics 0) and is counted in `n_unrankable`.
- Protocols: `full` = C is all item ids >= 2 (ids 0 and 1 are padding/OOV); `full_exclude_seen` = C is
  all ids >= 2 minus the user's seen items, but the target always stays in C; `sampled100` = C = the
  target + 100 negatives (given per user as an int array).

Implementation notes:

- NaN scores are treated as -inf, so a NaN target score ties with (and loses to) everything.
- A target id outside ``[2, N)`` (N = number of score columns) is unrankable.
- :class:`MetricAccumulator` does not keep floating-point sums. It keeps, per group, the integer
  histogram of ranks 1..max(ks) plus the user counts (stored as float64, exact below 2**53), and derives
  the HR/NDCG/MRR sums from the histogram only in :meth:`MetricAccumulator.result`. Merging states or
  all-reducing :meth:`MetricAccumulator.to_tensor` is therefore exact and independent of how users are
  split over ranks and batches.
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterable

import numpy as np
import torch

from interest_core.binary import auc  # noqa: F401  (re-exported for callers)
from interest_core.contract import FIRST_ITEM_ID

PROTOCOLS = ("full", "full_exclude_seen", "sampled100")

# Columns compared per block in target_ranks, bounding the temporary (B, block) bool tensor.
_MAX_COMPARE_ELEMS = 1 << 26


def _nan_to_neg_inf(x: torch.Tensor) -> torch.Tensor:
    if x.is_floating_point() and bool(torch.isnan(x).any()):
        return torch.nan_to_num(x, nan=float("-inf"))
    return x


def target_ranks(
    scores: torch.Tensor, targets: torch.Tensor, exclude: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Rank of each row's target among item ids ``2..N-1`` (``full`` / ``full_exclude_seen``).

    scores: (B, N) float scores over item ids 0..N-1. targets: (B,) int64.
    exclude: optional per-row 1-D int64 tensors of ids to remove from the candidates (seen items);
    the target itself is never removed, and out-of-range ids are ignored.
    Returns (B,) float64 ranks on ``scores.device``; ``inf`` where the target is not rankable.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    b, n = scores.shape
    targets = targets.to(device=scores.device, dtype=torch.long).reshape(-1)
    if targets.numel() != b:
        raise ValueError(f"targets has {targets.numel()} entries for {b} score rows")
    if exclude is not None and len(exclude) != b:
        raise ValueError(f"exclude has {len(exclude)} rows for {b} score rows")
    if n <= FIRST_ITEM_ID:  # no candidate ids at all
        return torch.full((b,), math.inf, dtype=torch.float64, device=scores.device)
    scores = _nan_to_neg_inf(scores)
    rankable = (targets >= FIRST_ITEM_ID) & (targets < n)
    rows = torch.arange(b, device=scores.device)
    s_t = scores[rows, targets.clamp(0, n - 1)].unsqueeze(1)

    count = torch.zeros(b, dtype=torch.long, device=scores.device)
    block = max(1, _MAX_COMPARE_ELEMS // max(b, 1))
    for start in range(FIRST_ITEM_ID, n, block):
        count += (scores[:, start:start + block] >= s_t).sum(dim=1)
    count -= 1  # the target itself (s_t >= s_t always holds after NaN -> -inf)

    if exclude is not None and b > 0:
        lens = torch.tensor([int(e.numel()) for e in exclude], dtype=torch.long, device=scores.device)
        if int(lens.sum()) > 0:
            cols = torch.cat([e.reshape(-1).to(device=scores.device, dtype=torch.long) for e in exclude])
            ex_rows = torch.repeat_interleave(rows, lens)
            keep = (cols >= FIRST_ITEM_ID) & (cols < n) & (cols != targets[ex_rows])
            key = torch.unique(ex_rows[keep] * n + cols[keep])  # de-duplicate (row, id) pairs
            ex_rows, cols = key // n, key % n
            hit = (scores[ex_rows, cols] >= s_t[ex_rows, 0]).long()
            count -= torch.zeros_like(count).index_add_(0, ex_rows, hit)

    ranks = (count + 1).to(torch.float64)
    return torch.where(rankable, ranks, torch.full_like(ranks, math.inf))


def sampled_ranks(scores: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Rank of each row's target among itself and its sampled negatives (``sampled100``).

    scores: (B, N); targets: (B,); negatives: (B, M) int ids (e.g. from :func:`draw_negatives`).
    Negatives equal to the target, or outside ``[2, N)``, are not candidates. Duplicated negatives
    (only when a user had fewer than M candidates) each count. Returns (B,) float64 ranks, ``inf`` if
    the target is not rankable.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    b, n = scores.shape
    targets = targets.to(device=scores.device, dtype=torch.long).reshape(-1)
    negatives = negatives.to(device=scores.device, dtype=torch.long)
    if targets.numel() != b or negatives.dim() != 2 or negatives.shape[0] != b:
        raise ValueError(
            f"expected targets (B,) and negatives (B, M) for B={b}, got {tuple(targets.shape)} and "
            f"{tuple(negatives.shape)}"
        )
    if n <= FIRST_ITEM_ID:
        return torch.full((b,), math.inf, dtype=torch.float64, device=scores.device)
    rankable = (targets >= FIRST_ITEM_ID) & (targets < n)
    hi = n - 1
    s_t = _nan_to_neg_inf(scores.gather(1, targets.clamp(0, hi).unsqueeze(1)))
    s_neg = _nan_to_neg_inf(scores.gather(1, negatives.clamp(0, hi)))
    valid = (negatives >= FIRST_ITEM_ID) & (negatives < n) & (negatives != targets.unsqueeze(1))
    count = ((s_neg >= s_t) & valid).sum(dim=1)
    ranks = (count + 1).to(torch.float64)
    return torch.where(rankable, ranks, torch.full_like(ranks, math.inf))


def _user_seed(seed: int, user_key: str) -> np.random.SeedSequence:
    digest = hashlib.blake2b(str(user_key).encode("utf-8"), digest_size=16).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *words])


def _draw_one(num_items: int, seen: np.ndarray, target: int, n: int, rng: np.random.Generator) -> np.ndarray:
    universe = num_items - FIRST_ITEM_ID
    excluded = np.asarray(seen, dtype=np.int64).reshape(-1)
    excluded = np.unique(np.append(excluded, np.int64(target)))
    excluded = excluded[(excluded >= FIRST_ITEM_ID) & (excluded < num_items)]
    n_allowed = universe - excluded.size
    if n_allowed <= 0:
        return np.zeros(n, dtype=np.int64)  # id 0 is padding: never a candidate in sampled_ranks
    if n_allowed < n or n_allowed <= 4 * n or excluded.size * 2 > universe:
        allowed = np.setdiff1d(np.arange(FIRST_ITEM_ID, num_items, dtype=np.int64), excluded, assume_unique=True)
        return rng.choice(allowed, size=n, replace=n_allowed < n).astype(np.int64)
    # Rejection sampling without replacement (acceptance >= 1/2 here), in draw order.
    out: list[np.ndarray] = []
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < n:
        draw = rng.integers(FIRST_ITEM_ID, num_items, size=2 * (n - chosen.size) + 16, dtype=np.int64)
        draw = draw[~np.isin(draw, excluded) & ~np.isin(draw, chosen)]
        _, first = np.unique(draw, return_index=True)
        draw = draw[np.sort(first)]
        out.append(draw[: n - chosen.size])
        chosen = np.concatenate(out)
    return chosen


def draw_negatives(
    num_items: int, seen: list[np.ndarray], targets: np.ndarray, n: int, seed: int, user_keys: list[str]
) -> np.ndarray:
    """(B, n) int64 uniform negatives from ids ``[2, num_items)`` excluding each user's seen items and target.

    Distinct within a row when at least n candidates exist, otherwise drawn with replacement from what
    exists (all zeros, i.e. no candidates, if nothing exists). Each row depends only on (seed, user_key,
    num_items, seen, target, n), so a user gets the same negatives on whichever rank or batch scores it.
    """
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    b = targets.size
    if len(seen) != b or len(user_keys) != b:
        raise ValueError(f"seen ({len(seen)}), targets ({b}) and user_keys ({len(user_keys)}) must align")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = np.zeros((b, n), dtype=np.int64)
    for i in range(b):
        rng = np.random.default_rng(_user_seed(seed, user_keys[i]))
        out[i] = _draw_one(int(num_items), seen[i], int(targets[i]), n, rng)
    return out


class MetricAccumulator:
    """HR/NDCG/MRR@K per group, from ranks; exact and mergeable (see the module docstring)."""

    def __init__(self, ks: Iterable[int] = (5, 10, 20)):
        ks = sorted({int(k) for k in ks})
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks: list[int] = ks
        self.max_k: int = ks[-1]
        self._groups: dict[str, dict] = {}

    # -- accumulation --------------------------------------------------------------------------------
    def _group(self, group: str) -> dict:
        if group not in self._groups:
            self._groups[group] = {
                "n_users": 0.0,
                "n_unrankable": 0.0,
                "rank_counts": np.zeros(self.max_k, dtype=np.float64),
            }
        return self._groups[group]

    def add(self, ranks: torch.Tensor | np.ndarray, group: str = "all") -> None:
        """Add users' ranks (integers >= 1, or inf for unrankable targets) to ``group``."""
        if isinstance(ranks, torch.Tensor):
            ranks = ranks.detach().to("cpu", torch.float64).numpy()
        r = np.asarray(ranks, dtype=np.float64).reshape(-1)
        if np.isnan(r).any():
            raise ValueError("ranks contain NaN")
        finite = r[np.isfinite(r)]
        if (r < 1).any() or (finite != np.floor(finite)).any():
            raise ValueError("ranks must be integers >= 1 or +inf")
        g = self._group(group)
        g["n_users"] += float(r.size)
        g["n_unrankable"] += float(np.isinf(r).sum())
        top = finite[finite <= self.max_k].astype(np.int64)
        g["rank_counts"] += np.bincount(top, minlength=self.max_k + 1)[1:].astype(np.float64)

    # -- merging -------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Plain, JSON-able counts: {"ks": [...], "groups": {g: {"n_users", "n_unrankable", "rank_counts"}}}."""
        return {
            "ks": list(self.ks),
            "groups": {
                name: {
                    "n_users": float(g["n_users"]),
                    "n_unrankable": float(g["n_unrankable"]),
                    "rank_counts": [float(x) for x in g["rank_counts"]],
                }
                for name, g in self._groups.items()
            },
        }

    def merge(self, other_state: dict) -> None:
        """Add another accumulator's :meth:`state` (same ks) into this one."""
        if list(other_state.get("ks", [])) != self.ks:
            raise ValueError(f"cannot merge ks={other_state.get('ks')} into ks={self.ks}")
        for name, og in other_state.get("groups", {}).items():
            counts = np.asarray(og["rank_counts"], dtype=np.float64)
            if counts.shape != (self.max_k,):
                raise ValueError(f"group {name!r}: rank_counts has shape {counts.shape}, expected ({self.max_k},)")
            g = self._group(name)
            g["n_users"] += float(og["n_users"])
            g["n_unrankable"] += float(og["n_unrankable"])
            g["rank_counts"] += counts

    def to_tensor(self, groups: list[str]) -> torch.Tensor:
        """float64 vector [n_users, n_unrankable, rank_counts...] per group, in ``groups`` order.

        Every rank must pass the same ``groups`` list; a group a rank never saw contributes zeros.
        Sum it with ``torch.distributed.all_reduce`` and load the result with :meth:`from_tensor`.
        """
        width = 2 + self.max_k
        out = np.zeros(len(groups) * width, dtype=np.float64)
        for i, name in enumerate(groups):
            g = self._groups.get(name)
            if g is not None:
                out[i * width] = g["n_users"]
                out[i * width + 1] = g["n_unrankable"]
                out[i * width + 2:(i + 1) * width] = g["rank_counts"]
        return torch.from_numpy(out)

    def from_tensor(self, tensor: torch.Tensor, groups: list[str]) -> None:
        """Replace the listed groups' counts with those in ``tensor`` (layout of :meth:`to_tensor`)."""
        width = 2 + self.max_k
        v = tensor.detach().to("cpu", torch.float64).numpy().reshape(-1)
        if v.size != len(groups) * width:
            raise ValueError(f"tensor has {v.size} values, expected {len(groups) * width} for {len(groups)} groups")
        for i, name in enumerate(groups):
            self._groups[name] = {
                "n_users": float(v[i * width]),
                "n_unrankable": float(v[i * width + 1]),
                "rank_counts": v[i * width + 2:(i + 1) * width].copy(),
            }

    # -- results -------------------------------------------------------------------------------------
    def result(self) -> dict[str, dict]:
        """{group: {"hr@K", "ndcg@K", "mrr@K" for K in ks (means over users), "n_users", "n_unrankable"}}.

        A group with no users reports NaN metrics.
        """
        r = np.arange(1, self.max_k + 1, dtype=np.float64)
        out: dict[str, dict] = {}
        for name, g in self._groups.items():
            n_users, counts = g["n_users"], g["rank_counts"]
            res: dict = {}
            for k in self.ks:
                c = counts[:k]
                sums = {"hr": c.sum(), "ndcg": (c / np.log2(r[:k] + 1)).sum(), "mrr": (c / r[:k]).sum()}
                for name_m, s in sums.items():
                    res[f"{name_m}@{k}"] = float(s / n_users) if n_users > 0 else float("nan")
            res["n_users"] = int(n_users)
            res["n_unrankable"] = int(g["n_unrankable"])
            out[name] = res
        return out
