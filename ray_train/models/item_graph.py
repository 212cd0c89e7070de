"""Item-graph fusion: item representations gain a LightGCN-style aggregation over the ETL's top-K co-occurrence graph.

    agg(v) = mean over hops h = 1..H of  A^h E (v),   A = the row-normalized top-K graph (weights = co-occurrence)
    item(v) = E(v) + sigmoid(W [E(v); agg(v)]) * agg(v)

E is the item table before fusion (the ID table or the content tower's rows). Like LightGCN, propagation has no
weights or nonlinearity of its own; a learned gate decides per item and dimension how much of its neighbourhood to
add, and the sequence encoder then reads the fused rows at its input and scores with them at its output. The graph
is two (V, K) buffers (neighbour ids, 0 = none, and weights), a CSR with exactly K slots per row, so a worker holds
V * K ids and weights and a hop costs V * K * D multiply-adds per optimizer step, whatever the batch. Items without
edges (new items, the --cold-items holdout: the graph comes from training events only) get agg = 0 and keep E.
Training with model.graph_sample = S < K uses S random neighbours of each item per step (re-normalized), the
neighbour sampling that keeps a step's cost at V * S * D for large catalogs.

Large catalogs (the sampled softmax) do not need every row: rows(ids, base) computes the fused rows of the items a
step reads (its inputs, targets and negatives) from their own neighbourhoods, hop by hop over the distinct
neighbours only (GraphSAGE-style): a step then costs about T * S^H * D for T touched items, whatever V, and equals
forward(table)[ids] exactly when nothing is sampled. Plain torch: no Ray / DeepSpeed here.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from typing import Callable

from interest_core.modelargs import ModelArgs


class ItemGraph(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        v, k, d = args.num_items, args.graph_top_k, args.dim
        self.hops, self.sample, self.self_loop = args.graph_hops, args.graph_sample, args.graph_self_loop
        self.gate = nn.Linear(2 * d, d)
        self.register_buffer("neighbors", torch.zeros(v, k, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(v, k))

    def set_graph(self, neighbors: np.ndarray, weights: np.ndarray) -> None:
        """(V, K) neighbour ids (0 = no neighbour) and non-negative weights, rows in any scale (normalized here)."""
        if neighbors.shape != tuple(self.neighbors.shape) or weights.shape != neighbors.shape:
            raise ValueError(f"graph arrays of shape {neighbors.shape} / {weights.shape} do not fit the model's "
                             f"{tuple(self.neighbors.shape)} (num_items x data.graph_top_k)")
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32)) * torch.as_tensor(neighbors > 0)
        with torch.no_grad():
            self.neighbors.copy_(torch.as_tensor(neighbors, dtype=torch.long))
            self.weights.copy_(w / w.sum(1, keepdim=True).clamp(min=1e-12))

    def _neighbours(self, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K) neighbour ids and normalized weights of the (N,) ids (None = every item); in training with
        graph_sample = S < K, S random neighbours per row, re-normalized."""
        nbr, w = (self.neighbors, self.weights) if ids is None else (self.neighbors[ids], self.weights[ids])
        if self.training and self.sample and self.sample < nbr.shape[1]:
            keep = torch.rand(w.shape, device=w.device).topk(self.sample, dim=1).indices  # (N, S) random slots
            nbr, w = nbr.gather(1, keep), w.gather(1, keep)
            w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
        return nbr, w

    def _step(self, at_ids: torch.Tensor, nbr_pos: torch.Tensor, w: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """One propagation step at N items: level (U, D) rows, nbr_pos (N, S) their neighbours' rows in it, at_ids
        (N, D) the items' own rows. With self-loops (A + I) / 2 on items that have edges, I on those without."""
        agg = F.embedding_bag(nbr_pos, level, per_sample_weights=w, mode="sum")  # (N, D)
        if not self.self_loop:
            return agg
        return torch.where((w.sum(1) > 0).unsqueeze(1), 0.5 * (at_ids + agg), at_ids)

    def _powers(self, ids: torch.Tensor, base: Callable[[torch.Tensor], torch.Tensor],
                hops: int) -> list[torch.Tensor]:
        """[E(ids), (A E)(ids), ..., (A^hops E)(ids)], each (N, D), reading only the ids' neighbourhoods (every
        distinct item computed once per level)."""
        if hops == 0:
            return [base(ids)]
        nbr, w = self._neighbours(ids)  # (N, S)
        union, inv = torch.unique(torch.cat([ids, nbr.reshape(-1)]), return_inverse=True)
        own, nbr_pos = inv[: len(ids)], inv[len(ids):].view_as(nbr)
        below = self._powers(union, base, hops - 1)  # [A^0 .. A^(hops-1)] E at ids and their neighbours
        return [level[own] for level in below] + [self._step(below[-1][own], nbr_pos, w, below[-1])]

    def rows(self, ids: torch.Tensor, base: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(N,) item ids -> (N, D) fused rows, base(ids) -> (N, D) the rows before fusion; the touched rows only."""
        powers = self._powers(ids, base, self.hops)
        return self._fuse(powers[0], sum(powers[1:]) / self.hops)

    def _fuse(self, table: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate(torch.cat([table, agg], dim=1)))  # (N, D)
        return table + gate * agg

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        """(V, D) item rows -> (V, D) fused rows."""
        nbr, w = self._neighbours()
        h, total = table, torch.zeros_like(table)
        for _ in range(self.hops):
            # (V, D): one propagation step; an embedding bag sums the weighted neighbour rows without building the
            # (V, K, D) tensor a gather would (5 GB per hop at 1M items, K = 20, D = 64)
            h = self._step(h, nbr, w, h)
            total = total + h
        return self._fuse(table, total / self.hops)
