"""Interest tags: a user's categories at every level of the catalog, weighted by the history and by what the model
predicts, and their precision against known interests. Pure numpy (torch for category_mass); used by `interest
evaluate`, `interest export` and the re-engagement list.

Levels come from the category path ("Electronics/Phones/Cases": level 1 "Electronics", level 2
"Electronics/Phones", level 3 the whole path); a category whose path is shorter than a level keeps its whole path
there, so the deepest level is always the category itself. Tag id 0 = unknown category.

Weight of tag c for a user, at one level:
    w(c) = (1 - beta) * H(c) + beta * P(the user's next item is in c)
H(c) is the history's share of c: the ETL's interest_weights of valid/test rows (the whole history, each event
weighted 0.5 ** (age / data.tag_half_life_days), age from the user's last event; categories of a level summed);
the second term is the model's next-item distribution (softmax over the catalogue) summed by category. beta =
export.tag_predicted_weight. Ties rank by tag id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SEP = "/"
Source = tuple[np.ndarray, np.ndarray]
"""(tag ids (B, M), weights (B, M)): one source of tag weight per user; id 0 (unknown, padding) is ignored."""


@dataclass(frozen=True)
class TagLevels:
    names: list[list[str]]
    """Per level, tag id -> name; id 0 = unknown ("")."""
    item_tag: np.ndarray
    """(levels, num_items) int64: the tag id of every item id at every level, 0 = unknown."""
    category_tag: np.ndarray
    """(levels, num_categories) int64: the tag id of every category id (contract: 0 = unknown) at every level."""

    @property
    def depth(self) -> int:
        return len(self.names)


def tag_levels(categories: Sequence[str | None], item_idx: np.ndarray, item_category_idx: np.ndarray,
               num_items: int, sep: str = SEP) -> TagLevels:
    """The catalog's levels. categories: the category vocabulary, category id -> path (vocab/categories; id 0 =
    unknown, None); item_idx, item_category_idx: the items table's item id -> category id. Every category of the
    vocabulary gets a tag, also those whose items all fell below the vocabulary's min_count."""
    paths = [c.split(sep) if c else [] for c in categories]
    depth = max((len(p) for p in paths), default=0)
    names: list[list[str]] = []
    category_tag = np.zeros((max(depth, 1), max(len(paths), 1)), dtype=np.int64)
    for level in range(depth):
        ids: dict[str, int] = {}
        for c, p in enumerate(paths):
            if p and c > 0:
                category_tag[level, c] = ids.setdefault(sep.join(p[: level + 1]), len(ids) + 1)
        names.append([""] + list(ids))
    cat_idx = np.asarray(item_category_idx, dtype=np.int64)
    if cat_idx.size and (cat_idx.min() < 0 or cat_idx.max() >= len(paths)):
        raise ValueError(f"items/ names category ids up to {int(cat_idx.max())} but vocab/categories holds "
                         f"{len(paths)}: the data directory mixes two ETL runs; rerun `interest etl`")
    item_tag = np.zeros((category_tag.shape[0], num_items), dtype=np.int64)
    item_tag[:, np.asarray(item_idx, dtype=np.int64)] = category_tag[:, cat_idx]
    return TagLevels(names=names or [[""]], item_tag=item_tag, category_tag=category_tag)


def category_names(category: Sequence[str], category_idx: Sequence[int]) -> list[str | None]:
    """vocab/categories' columns -> category id -> path, id 0 (unknown) = None."""
    out: list[str | None] = [None] * (max(category_idx, default=0) + 1)
    for c, i in zip(category, category_idx):
        if i > 0:
            out[i] = c
    return out


def pad_lists(lists: Sequence[Sequence], width: int, dtype: type) -> np.ndarray:
    """Ragged lists -> (B, width) array, zero-filled on the right, longer lists cut."""
    out = np.zeros((len(lists), width), dtype=dtype)
    for r, x in enumerate(lists):
        x = list(x)[:width]
        out[r, : len(x)] = x
    return out


def window_shares(items: np.ndarray, ts: np.ndarray, half_life_s: np.ndarray, item_tag: np.ndarray) -> Source:
    """A history window's tag shares as a source: items, ts (B, L), 0 = padding; each event weighted 0.5 ** (age /
    half-life) (half_life_s (B,); inf = every event alike), age from the user's last event, normalised per user."""
    valid = items > 0
    tag = item_tag[items] * valid  # (B, L)
    age = (ts.max(axis=1, initial=0, where=valid)[:, None] - ts) / half_life_s[:, None]  # (B, L)
    w = np.where(tag > 0, np.exp2(-np.nan_to_num(age, nan=0.0)), 0.0)  # (B, L)
    total = w.sum(axis=1, keepdims=True)
    return tag, np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def category_mass(probs, item_tag, top: int) -> Source:
    """The model's next-item distribution summed by tag: probs (B, V) torch tensor (softmax over item ids),
    item_tag (V,) torch int64 -> the top tags (B, M) and their probabilities (B, M), M = min(top, tags), numpy."""
    import torch

    mass = torch.zeros(probs.shape[0], int(item_tag.max()) + 1, dtype=probs.dtype).index_add_(1, item_tag, probs)
    mass[:, 0] = 0  # unknown category
    v, i = mass.topk(min(top, mass.shape[1]), dim=1)
    return i.numpy(), v.double().numpy()


def top_tags(sources: list[Source], top: int) -> tuple[np.ndarray, np.ndarray]:
    """The top tags per user of the summed sources: (tags (B, top) int64, -1 where a user has fewer, weights
    (B, top) float64), by descending weight, ties by tag id."""
    B = len(sources[0][0])
    rows = np.concatenate([np.repeat(np.arange(B), t.shape[1]) for t, _ in sources])
    tags = np.concatenate([t.ravel() for t, _ in sources]).astype(np.int64)
    weights = np.concatenate([w.ravel() for _, w in sources]).astype(np.float64)
    keep = (tags > 0) & (weights > 0)
    n_tags = int(tags.max(initial=0)) + 1
    keys, inverse = np.unique(rows[keep] * n_tags + tags[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=weights[keep])
    row, tg = keys // n_tags, keys % n_tags
    order = np.lexsort((tg, -sums, row))
    row, tg, sums = row[order], tg[order], sums[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within the user's tags
    sel = rank < top
    out_t = np.full((B, top), -1, dtype=np.int64)
    out_w = np.zeros((B, top), dtype=np.float64)
    out_t[row[sel], rank[sel]], out_w[row[sel], rank[sel]] = tg[sel], sums[sel]
    return out_t, out_w


def popular_tags(items: np.ndarray, item_tag: np.ndarray, top: int) -> np.ndarray:
    """(top,) the tags with the most events over all histories (the trivial baseline: everyone gets these)."""
    counts = np.bincount(item_tag[items[items > 0]], minlength=int(item_tag.max()) + 1)
    counts[0] = 0
    return np.lexsort((np.arange(len(counts)), -counts))[:top]


def precision_at_k(tags: np.ndarray, truth: list[set[int]], k_max: int = 3) -> tuple[float | None, int]:
    """Mean over users with known interests of |top-k tags ∩ truth| / k, k = min(k_max, |truth|); (value, users).

    tags (B, >= k_max) ranked tag ids (-1 = none, counted as a miss)."""
    scores = [len(set(t[: min(k_max, len(s))].tolist()) & s) / min(k_max, len(s))
              for t, s in zip(tags, truth) if s]
    return (float(np.mean(scores)) if scores else None), len(scores)
