"""InterestModel: embeddings -> SASRec or HSTU blocks (or a GRU) -> final LayerNorm, trained on next-item at every
position.

Batch (dict of tensors, all (B, L), left-padded so the most recent event sits at position L-1):
    items               int64  item ids, 0 = padding, 1 = OOV
    event_types         int64  event-type ids, 0 = padding
    ts                  int64  unix seconds (0 at padding)
    targets             int64  next item at each position, 0 = none; OOV targets are ignored   (loss only)
    target_event_types  int64  type of the next event, 0 = none                                (loss only)
    user_features       int64  (B, F) side-feature ids, 0 = unknown (optional; models with user side features)
Padding is defined by items == 0; padded positions never influence valid ones and encode() returns zeros there.
Plain torch: no Ray / DeepSpeed here. forward(batch) == loss(batch) so a wrapped engine can be called directly.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from interest_core.contract import OOV_ID, PAD_ID
from interest_core.decay import BUCKET_EDGES_S
from interest_core.modelargs import NUM_TIME_BUCKETS, ModelArgs, flops_per_token

from .buckets import time_since_previous
from .heads import DecayHead, NextEventTypeHead
from .gru import GRUBackbone
from .hstu import HSTUBlock
from .item_graph import ItemGraph
from .item_tower import ItemTower
from .losses import full_softmax_loss, sampled_softmax_loss
from .sasrec import SASRecBlock


def attention_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B, 1, L, L) bool, True = query i may attend key j: j <= i and (j valid or j == i).

    The diagonal keeps padded queries from having no key at all (softmax of nothing = NaN); valid queries never
    see a padded key, so whatever the padded rows compute stays there.
    """
    L = valid.size(1)
    causal = torch.ones(L, L, dtype=torch.bool, device=valid.device).tril()  # (L, L)
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)  # (L, L)
    return (causal & (valid[:, None, :] | eye))[:, None]  # (B, 1, L, L)


class Embeddings(nn.Module):
    """item * sqrt(D) + event type + position + log-bucketised time since the previous event.

    Positions count from the sequence's end (0 = most recent event) or from its start (0 = the oldest event in the
    window, args.position_anchor): from the start, a training target's query has the position it has at inference
    (the events before it), not "how many events follow me in this window", which inference never shows."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        # args.item_features: the content tower (item_tower.py) in place of the ID table, at input and output
        self.item = ItemTower(args) if args.item_features else nn.Embedding(args.num_items, args.dim,
                                                                          padding_idx=PAD_ID)
        # None when the data has one event type: its embedding would be a constant.
        self.event_type = (nn.Embedding(args.num_event_types, args.dim, padding_idx=PAD_ID)
                           if args.event_type_input else None)
        self.pos = nn.Embedding(args.max_len, args.dim)
        self.from_start = args.position_anchor == "start"
        self.time = nn.Embedding(NUM_TIME_BUCKETS + 2, args.dim, padding_idx=0)
        self.norm = nn.LayerNorm(args.dim)
        self.drop = nn.Dropout(args.dropout)
        self.scale = args.dim**0.5 if args.scale_embeddings else 1.0

    def forward(self, items: torch.Tensor, event_types: torch.Tensor, ts: torch.Tensor,
                table: torch.Tensor | None = None) -> torch.Tensor:
        """table: the (V, D) item rows to read (the item-graph fusion's); None = look items up in self.item."""
        B, L = items.shape
        if L > self.pos.num_embeddings:
            raise ValueError(f"sequence length {L} > max_len {self.pos.num_embeddings}")
        valid = items != PAD_ID  # (B, L)
        if self.from_start:
            pos = (torch.cumsum(valid, dim=1) - 1).clamp(min=0)  # (B, L) valid events before each one
        else:
            # (L,) counted from the right end; not arange(L - 1, -1, -1): ONNX Runtime 1.31's Gather-to-Slice
            # fusion reads that range's end of -1 as "the last row" and embeds nothing (seen in the ONNX export)
            pos = (L - 1) - torch.arange(L, device=items.device)
        x = (self.item(items) if table is None else table[items]) * self.scale  # (B, L, D)
        if self.event_type is not None:
            x = x + self.event_type(event_types * valid)  # (B, L, D)
        x = x + self.pos(pos) + self.time(time_since_previous(ts, valid))  # (B, L, D)
        x = self.drop(self.norm(x))  # (B, L, D)
        return x * valid.unsqueeze(-1)  # (B, L, D), zeros at padding


class InterestModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed = Embeddings(args)
        if args.arch == "gru":  # one multi-layer recurrent backbone instead of n_layers attention blocks
            self.gru = GRUBackbone(args)
            self.blocks = nn.ModuleList()
        else:
            block = {"sasrec": SASRecBlock, "hstu": HSTUBlock}[args.arch]
            self.blocks = nn.ModuleList([block(args) for _ in range(args.n_layers)])
        self.norm = nn.LayerNorm(args.dim)
        self.graph = ItemGraph(args) if args.graph_hops else None
        # user side features: the sum of the user's feature rows, added to every state (interest_core/user_features)
        self.user_side = (nn.EmbeddingBag(args.user_feature_buckets + 1, args.dim, mode="sum", padding_idx=0)
                          if args.user_feature_buckets else None)
        self.heads = nn.ModuleDict()
        if args.event_type_loss_weight > 0:
            self.heads["event_type"] = NextEventTypeHead(args.dim, args.num_event_types, args.event_type_loss_weight,
                                                         args.event_type_prior)
        if args.decay_loss_weight > 0:
            self.heads["decay"] = DecayHead(args.dim, BUCKET_EDGES_S.tolist(), args.decay_loss_weight,
                                            args.buy_event_type, args.decay_max_gap_s)
        self.apply(_init_weights)

    @property
    def item_emb(self) -> torch.Tensor:
        """(num_items, D) input item embedding, shared with the output layer (the content tower's item rows when
        the model reads item features, fused with their graph neighbourhood when it reads the item graph)."""
        rows = self.embed.item.weight
        return rows if self.graph is None else self.graph(rows)

    def set_item_graph(self, neighbors, weights) -> None:
        """The item-graph fusion's (V, K) neighbours and weights (interest_core.item_features.graph_arrays)."""
        if self.graph is not None:
            self.graph.set_graph(neighbors, weights)

    def set_item_arrays(self, arrays) -> None:
        """The content tower's per-item features (interest_core.item_features.item_arrays); no-op without one."""
        if isinstance(self.embed.item, ItemTower):
            self.embed.item.set_item_arrays(arrays)

    def encode(self, batch: dict[str, torch.Tensor], table: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) states; table: the item rows when the caller has them (the loss reuses its output layer's)."""
        items, ts = batch["items"], batch["ts"]
        valid = items != PAD_ID  # (B, L)
        mask = attention_mask(valid)  # (B, 1, L, L)
        if table is None and self.graph is not None:
            table = self.item_emb  # the fused rows, computed once for the whole batch
        x = self.embed(items, batch["event_types"], ts, table)  # (B, L, D)
        if self.args.arch == "gru":
            x = self.gru(x, valid)  # (B, L, D)
        for block in self.blocks:
            if self.args.activation_checkpointing and self.training:
                x = checkpoint(block, x, mask, ts, use_reentrant=False)
            else:
                x = block(x, mask, ts)
        x = self.norm(x)
        side = self.side(batch)
        if side is not None:
            x = x + side.unsqueeze(1)  # (B, L, D)
        return x * valid.unsqueeze(-1)  # (B, L, D), zeros at padding

    def side(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, D) the user's side-feature vector; None without user side features (or rows that carry none)."""
        if self.user_side is None or "user_features" not in batch:
            return None
        return self.user_side(batch["user_features"])

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D): the state after the most recent event; a user without events is their side features alone."""
        h = self.encode(batch)[:, -1]
        side = self.side(batch)
        if side is not None:
            empty = (batch["items"] == PAD_ID).all(dim=1, keepdim=True)  # (B, 1)
            h = h + side * empty
        return h

    def decay_hazards(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, K) hazards of the next event after each row's most recent event (the decay head must exist)."""
        return self.heads["decay"].hazards(self.encode(batch), batch)

    def scores(self, user_emb: torch.Tensor) -> torch.Tensor:
        """(B, D) user embeddings -> (B, V) scores over the catalog; padding and OOV are never recommended."""
        scores = user_emb @ self.item_emb.T  # (B, V)
        scores[:, : OOV_ID + 1] = float("-inf")
        return scores

    def score_all(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scores(self.user_embedding(batch))  # (B, V)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Next-item loss at every position + sum of weighted head losses; stats are detached 0-dim tensors."""
        targets = batch["targets"]  # (B, L)
        a = self.args
        if a.loss == "sampled" and (self.graph is not None or isinstance(self.embed.item, ItemTower)):
            # computed item rows (graph, content tower): only those this step reads, i.e. its inputs, targets and
            # uniform negatives (drawn first), not the whole catalog's
            uniform = torch.randint(OOV_ID + 1, a.num_items, (a.num_negatives,), device=targets.device)  # (M,)
            table = self.touched_rows(batch["items"], targets, uniform)
            hidden = self.encode(batch, table)  # (B, L, D)
            item_loss = sampled_softmax_loss(hidden, table, targets, a.num_negatives, a.num_items, uniform=uniform)
        else:
            table = self.item_emb  # (V, D), once per step: the input rows and the output layer
            hidden = self.encode(batch, table if self.graph is not None else None)  # (B, L, D)
            if a.loss == "full":
                item_loss = full_softmax_loss(hidden, table, targets)
            else:
                item_loss = sampled_softmax_loss(hidden, table, targets, a.num_negatives, a.num_items)
        total = item_loss
        stats = {"item_loss": item_loss.detach(), "item_targets": (targets > OOV_ID).sum()}
        for head in self.heads.values():
            head_loss, head_stats = head.loss(hidden, batch)
            total = total + head.loss_weight * head_loss
            stats.update(head_stats)
        stats["loss"] = total.detach()
        return total, stats

    def touched_rows(self, *ids: torch.Tensor) -> "TouchedRows":
        """The item rows (content tower, graph fusion) of the ids a step reads, indexable by item id like the
        (V, D) table."""
        touched = torch.unique(torch.cat([x.reshape(-1) for x in ids]))  # sorted
        rows = self.graph.rows(touched, self.embed.item) if self.graph is not None else self.embed.item(touched)
        return TouchedRows(touched, rows)

    forward = loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (the tied item embedding once); non_embedding=True leaves out every nn.Embedding."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(m.weight.numel() for m in self.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)))
            tower = self.embed.item
            if isinstance(tower, ItemTower) and tower.text is not None:  # builds item rows like a table
                n -= tower.text.weight.numel()
            if self.graph is not None:  # the graph gate too: applied per item row, not per token
                n -= sum(p.numel() for p in self.graph.parameters())
        return n

    def flops_per_token(self) -> int:
        """Training FLOPs per token: interest_core.modelargs.flops_per_token (the planner's count)."""
        return flops_per_token(self.args)


class TouchedRows:
    """Rows of some item ids (sorted, distinct), read like the full table: rows[ids] for any tensor of those ids."""

    def __init__(self, ids: torch.Tensor, rows: torch.Tensor):
        self.ids, self.rows = ids, rows

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.rows[torch.searchsorted(self.ids, idx)]


def _init_weights(module: nn.Module) -> None:
    """GPT-2 style: N(0, 0.02) weights, zero biases, zero padding rows."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
