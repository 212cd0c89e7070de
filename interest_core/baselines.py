"""Classical next-item baselines, built from training data only and scored exactly like the model.

  popularity            items by their count in the training part of every history;
  recent_popularity     items by their count in training events of the last eval.recent_popularity_days days
                        before the last training event (each training event counted once: windows.py);
  cooccurrence          sum of the Spark item graph's edge weights from the user's last 3 items
                        (weights 1, 1/2, 1/3 by recency), popularity breaking ties;
  repeat_last_category  items of the last history item's category first, each group by popularity;
  repeat_last           the user's own past items (the history's last max_len), most recent first, then the rest
                        by popularity: a shop's repeat purchases.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from interest_core.contract import OOV_ID, PAD_ID, split_files
from interest_core.scoring import Scorer
from interest_core.windows import WindowRule


class Baselines:
    """Scorers over the whole catalog from the training shards, the item table and the item graph."""

    def __init__(self, data_dir: Path, num_items: int, recent_days: float, rule: WindowRule,
                 text: np.ndarray | None = None, seed: int = 0):
        """text: (num_items, TEXT_DIM) L2-normalized item text embeddings (interest_core.item_features.text_matrix)
        for the content-kNN baseline; seed: the uniform random ranking's."""
        items = pq.read_table(data_dir / "items", columns=["item_idx", "train_count", "category_idx"]).to_pydict()
        idx = np.asarray(items["item_idx"], dtype=np.int64)
        self.pop = np.zeros(num_items, dtype=np.float64)
        self.pop[idx] = items["train_count"]
        self.category = np.zeros(num_items, dtype=np.int64)
        self.category[idx] = items["category_idx"]
        self.recent = recent_counts(data_dir, num_items, recent_days, rule)
        g = pq.read_table(data_dir / "graph").to_pydict()
        # The graph as CSR arrays: row i's neighbours are cols[crow[i]:crow[i + 1]].
        src = np.asarray(g["src"], dtype=np.int64)
        order = np.argsort(src, kind="stable")
        self.crow = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_items))])
        self.cols = torch.from_numpy(np.asarray(g["dst"], dtype=np.int64)[order])
        self.vals = torch.from_numpy(np.asarray(g["weight"], dtype=np.float64)[order])
        self.num_items = num_items
        # A tiny popularity term breaks ties without changing any ordering the main score makes.
        self.tiebreak = torch.from_numpy(self.pop / (self.pop.max() + 1) * 1e-6)
        self.text = None if text is None else torch.from_numpy(np.asarray(text, dtype=np.float32))
        self.seed = seed

    def scorers(self) -> dict[str, Scorer]:
        pop = torch.from_numpy(self.pop)
        recent = torch.from_numpy(self.recent)
        gen = torch.Generator().manual_seed(self.seed)
        out = {
            "popularity": lambda b: pop.expand(b["items"].shape[0], -1).clone(),
            "recent_popularity": lambda b: (recent + self.tiebreak).expand(b["items"].shape[0], -1).clone(),
            "cooccurrence": self._cooccurrence,
            "repeat_last_category": self._repeat_category,
            "repeat_last": self._repeat_last,
            # every item equally likely: hr@K = K / catalog size in expectation, the floor for cold items
            "random": lambda b: torch.rand(b["items"].shape[0], self.num_items, generator=gen, dtype=torch.float64),
        }
        if self.text is not None:
            out["content_knn"] = self._content_knn
        return out

    def _content_knn(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cosine between each item's text embedding and the mean text embedding of the user's history."""
        items = b["items"]  # (B, L)
        hist = self.text[items] * (items > OOV_ID).unsqueeze(-1)  # (B, L, T)
        user = torch.nn.functional.normalize(hist.sum(1), dim=1)  # (B, T)
        return (user @ self.text.T).double() + self.tiebreak  # (B, V)

    def _cooccurrence(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        items = b["items"]  # (B, L), most recent last
        scores = self.tiebreak.expand(items.shape[0], -1).clone()
        for back, w in ((1, 1.0), (2, 0.5), (3, 1 / 3)):
            col = items[:, -back]
            scores += w * self._graph_rows(col) * (col > OOV_ID).unsqueeze(1)
        return scores

    def _graph_rows(self, col: torch.Tensor) -> torch.Tensor:
        """Dense (B, N) rows of the graph for the given item ids."""
        out = torch.zeros(len(col), self.num_items, dtype=torch.float64)
        for r, i in enumerate(col.tolist()):
            a, b = self.crow[i], self.crow[i + 1]
            out[r, self.cols[a:b]] = self.vals[a:b]
        return out

    def _repeat_category(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        last_cat = torch.from_numpy(self.category)[b["items"][:, -1]]  # (B,)
        same = (torch.from_numpy(self.category).unsqueeze(0) == last_cat.unsqueeze(1)) & (last_cat.unsqueeze(1) > 0)
        pop = torch.from_numpy(self.pop / (self.pop.max() + 1))
        return same.double() + pop.unsqueeze(0)


    def _repeat_last(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        items = b["items"]  # (B, L), most recent last
        when = torch.arange(1, items.shape[1] + 1, dtype=torch.float64).expand(items.shape[0], -1)
        seen = torch.where(items > OOV_ID, 1.0 + when / items.shape[1], 0.0)  # later positions score higher
        scores = torch.zeros(items.shape[0], self.num_items, dtype=torch.float64)
        scores.scatter_reduce_(1, items, seen, reduce="amax")  # an item's most recent position
        return scores + self.tiebreak


def recent_counts(data_dir: Path, num_items: int, days: float, rule: WindowRule) -> np.ndarray:
    """Per item, training events in the last `days` days before the last training event, each counted once
    although overlapping windows repeat it."""
    t = pq.ParquetDataset(split_files(data_dir, "train")).read(columns=["items", "ts", "window"])
    items = pc.list_flatten(t["items"]).to_numpy()
    ts = pc.list_flatten(t["ts"]).to_numpy()
    lens = pc.list_value_length(t["items"]).to_numpy().astype(np.int64)
    keep = rule.new_events(t["window"].to_numpy(), lens)
    pos = np.arange(len(items)) - np.repeat(np.cumsum(lens) - lens, lens)
    unique = (pos < np.repeat(keep, lens)) & (items != PAD_ID)  # PAD: split=time's censoring marker
    counts = np.zeros(num_items, dtype=np.float64)
    if unique.any():
        recent = unique & (ts >= ts[unique].max() - days * 86400)
        np.add.at(counts, items[recent], 1.0)
    return counts
