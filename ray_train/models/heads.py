"""Pluggable auxiliary heads on the backbone's hidden states.

A head is an nn.Module with a ``loss_weight`` and ``loss(hidden, batch) -> (loss, stats)``. InterestModel keeps its
heads in ``self.heads`` (an nn.ModuleDict) and adds ``head.loss_weight * loss`` of each to the next-item loss, so a
later decay / survival head only has to implement this interface and read its own target keys from the batch.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interest_core.contract import PAD_ID
from interest_core.modelargs import DECAY_FEATURES, NUM_TIME_BUCKETS, RECENT_EVENTS, action_embedding_dim

from .buckets import log2_bucket


class Head(nn.Module):
    """Base class. ``loss`` returns a scalar (mean over the positions that carry a target) and a dict of detached
    0-dim tensors whose keys are prefixed with the head's name."""

    def __init__(self, loss_weight: float):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class NextEventTypeHead(Head):
    """Next action: the type of the next event (view / cart / fav / buy, or whatever types the data has) from what
    is known before it: the encoder's state after the current event and, as explicit inputs, the types of the
    last RECENT_EVENTS events (the current one included) each with the log2 bucket of its age at the current event,
    and the UTC hour of the current event. The state holds these only as far as next-item training keeps them; a
    purchase, say, follows a cart minutes earlier that no purchase has closed. Never the next event's item or time.

    Loss: logit-adjusted softmax cross-entropy (Menon et al. 2021, "Long-tail learning via logit adjustment"): the
    loss reads the head's output plus log prior, the prior being the types' shares in the data. So the output
    itself estimates the balanced posterior: its argmax is the balanced-error decision, which does not collapse to
    the majority type. softmax(output + log prior) is the calibrated probability (``probs``).

    Reads ``batch["target_event_types"]`` (B, L) int64, 0 = no target (ignored); type 0 (padding) is never
    predicted.
    """

    def __init__(self, dim: int, num_event_types: int, loss_weight: float, prior: list[float] | None = None):
        super().__init__(loss_weight)
        e = action_embedding_dim(dim)
        self.type_emb = nn.Embedding(num_event_types, e)  # per recent slot: its type ...
        self.age_emb = nn.Embedding(NUM_TIME_BUCKETS + 1, e)  # ... plus its age bucket (0 = empty slot)
        self.hour_emb = nn.Embedding(24, e)
        self.net = nn.Sequential(nn.Linear(dim + (RECENT_EVENTS + 1) * e, dim), nn.GELU(),
                                 nn.Linear(dim, num_event_types))
        p = torch.tensor(prior if prior is not None else [0.0] + [1.0] * (num_event_types - 1), dtype=torch.float32)
        if p.numel() != num_event_types:
            raise ValueError(f"event-type prior has {p.numel()} entries, the vocabulary {num_event_types}")
        p = p.clamp(min=0)
        p[1:] = p[1:].clamp(min=1e-6 * float(p[1:].sum().clamp(min=1e-12)))  # a type never seen keeps a chance
        log_prior = torch.log(p / p[1:].sum())
        log_prior[0] = -1e4  # padding
        self.register_buffer("log_prior", log_prior, persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "proj.weight" in state_dict:
            raise ValueError("this model was saved with the linear next-event-type head of an earlier version (data "
                             "schema 3); rerun `interest etl` and `interest train` with this version")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, D) hidden states -> (B, L, E) balanced logits (add log_prior for calibrated ones)."""
        items, types, ts = batch["items"], batch["event_types"], batch["ts"]
        valid = items != PAD_ID
        k = RECENT_EVENTS
        # slot j of position t = event t - j (j = 0: the current one), empty before the window's first event
        past = lambda x: F.pad(x, (k - 1, 0)).unfold(1, k, 1).flip(-1)  # noqa: E731  (B, L, k)
        r_valid = past(valid.long()).bool() & valid.unsqueeze(-1)
        age = torch.where(r_valid, 1 + log2_bucket((ts.unsqueeze(-1) - past(ts)).contiguous()), 0)  # (B, L, k)
        slots = self.type_emb(past(types) * r_valid) + self.age_emb(age)  # (B, L, k, e)
        hour = torch.div(ts.clamp(min=0) % 86400, 3600, rounding_mode="floor")
        x = torch.cat([hidden, slots.flatten(-2).to(hidden.dtype), self.hour_emb(hour).to(hidden.dtype)], dim=-1)
        return self.net(x)

    def probs(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L, E) calibrated P(next event type) at every position (column 0, padding, is ~0)."""
        return torch.softmax(self(hidden, batch).float() + self.log_prior, dim=-1)

    def loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        target = batch["target_event_types"].reshape(-1)  # (B*L,)
        balanced = self(hidden, batch).reshape(target.numel(), -1).float()  # (B*L, E)
        n = (target != PAD_ID).sum()
        loss = F.cross_entropy(balanced + self.log_prior, target, ignore_index=PAD_ID,
                               reduction="sum") / n.clamp(min=1)
        correct = ((balanced[:, 1:].argmax(-1) + 1 == target) & (target != PAD_ID)).sum()
        stats = {
            "event_type_loss": loss.detach(),
            "event_type_acc": (correct / n.clamp(min=1)).detach(),
            "event_type_targets": n.detach(),
        }
        return loss, stats


def decay_features(batch: dict[str, torch.Tensor], buy_type: int) -> torch.Tensor:
    """(B, L, DECAY_FEATURES) whole-history counts at each position, log1p'd: the user's events so far, days since
    the first event, distinct UTC days with an event so far, purchases so far. The ETL stores them as of the row's
    first event (n_before, first_ts, days_before, buys_before; 0 when a row lacks them) and they continue here:
    a position starts a new day when its day differs from the previous event's (ts - dt)."""
    items, ts, dt = batch["items"], batch["ts"], batch["dt"]
    valid = items != PAD_ID  # (B, L)
    zero = torch.zeros(items.shape[0], dtype=torch.int64, device=items.device)
    scalar = lambda name: batch.get(name, zero)[:, None]  # noqa: E731  (B, 1)
    count = torch.cumsum(valid, dim=1) + scalar("n_before")  # (B, L)
    first_ts = batch.get("first_ts")
    tenure = (ts - (first_ts[:, None] if first_ts is not None else ts)).clamp(min=0) / 86400.0  # (B, L)
    new_day = valid & ((torch.div(ts, 86400, rounding_mode="floor") != torch.div(ts - dt, 86400, rounding_mode="floor"))
                       | (count == 1))
    days = torch.cumsum(new_day, dim=1) + scalar("days_before")
    buys = torch.cumsum(valid & (batch["event_types"] == buy_type) & (buy_type > 0), dim=1) + scalar("buys_before")
    feats = torch.stack([count, tenure, days, buys], dim=-1).float()  # (B, L, DECAY_FEATURES)
    return torch.log1p(feats) * valid.unsqueeze(-1)


class DecayHead(Head):
    """Discrete-time survival head: from the hidden state after an event (and decay_features), the hazard of the
    next event in each gap bucket of interest_core.decay.BUCKET_EDGES_S (1 hour .. 1 year, log-spaced), i.e.
    h_k = P(next event in bucket k | none before the bucket's start), with a constant rate inside a bucket
    (lambda_k w_k = -log(1 - h_k), w_k its width): the convention interest_core.decay's read-outs use.

    Trained on every scored position by the censored piecewise-exponential likelihood (batch target_gap,
    target_censored), a gap g in bucket j at share u of it:
      event at g:                 sum_{k<j} log(1 - h_k) + u log(1 - h_j) + log(lambda_j w_j)
      censored at g:              sum_{k<j} log(1 - h_k) + u log(1 - h_j)
      gap beyond the last bucket: sum_k log(1 - h_k)   (event or censored: both only say "survived it")
    so "no event until the end of observation" counts as survival, never as a negative, and an event early in a
    bucket says more than one late in it (a whole-bucket "log h_j" would overstate the hazard of the buckets that
    the end of observation cuts short).

    Training sees no gap longer than max_gap_s (the end of training observation minus the first event): buckets
    past the one holding it never carry a loss, so at inference they take that bucket's rate (flat extrapolation)
    instead of an untrained output. max_gap_s = 0 extrapolates nothing.
    """

    def __init__(self, dim: int, edges_s: list[float], loss_weight: float, buy_type: int = 0,
                 max_gap_s: float = 0.0):
        super().__init__(loss_weight)
        self.buy_type = buy_type
        self.register_buffer("edges", torch.tensor(edges_s, dtype=torch.float64), persistent=False)  # (K+1,)
        k = len(edges_s) - 1
        # Index of the bucket holding the longest observable gap (K - 1 or more: nothing to extrapolate).
        self.last_trained = int(torch.bucketize(torch.tensor(float(max_gap_s), dtype=torch.float64),
                                                self.edges[1:], right=True)) if max_gap_s > 0 else k - 1
        self.net = nn.Sequential(nn.Linear(dim + DECAY_FEATURES, dim), nn.GELU(), nn.Linear(dim, k))
        # 1: the hazards read the encoder's state and the counts; 0: the counts only (the refit's choice when the
        # state does not help on validation, ray_train/decay_refit.py). Saved with the weights.
        self.register_buffer("state_gate", torch.ones(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "state_gate", torch.ones(()))  # models saved before the gate existed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, hidden: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """hidden (..., D), feats (..., DECAY_FEATURES) -> (..., K) hazard logits."""
        return self.net(torch.cat([hidden * self.state_gate.to(hidden.dtype), feats.to(hidden.dtype)], dim=-1))

    def hazards(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden states (B, L, D) of rows whose most recent event is last -> (B, K) float64 hazards after it."""
        return self.hazards_at(hidden[:, -1], decay_features(batch, self.buy_type)[:, -1])

    def hazards_at(self, hidden: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) hidden states and (B, DECAY_FEATURES) features of positions -> (B, K) float64 hazards, the buckets
        past the longest observable gap at the rate of the bucket holding it."""
        h = torch.sigmoid(self(hidden, feats).double())
        j = self.last_trained
        if j >= h.shape[1] - 1:
            return h
        widths = self.edges[1:] - self.edges[:-1]  # (K,)
        rate = -torch.log1p(-h[:, j].clamp(max=1 - 1e-12)) / widths[j]  # (B,) per second
        return torch.cat([h[:, : j + 1], -torch.expm1(-rate[:, None] * widths[None, j + 1:])], dim=1)

    def targets(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]):
        """The scored positions of a training batch: (hidden (N, D), features (N, DECAY_FEATURES), gap (N,) seconds,
        censored (N,) bool)."""
        gap = batch["target_gap"]  # (B, L) seconds, -1 = no target
        keep = gap >= 0
        return (hidden[keep], decay_features(batch, self.buy_type)[keep], gap[keep].double(),
                batch["target_censored"][keep])

    def nll(self, logits: torch.Tensor, gap: torch.Tensor, censored: torch.Tensor) -> torch.Tensor:
        """(N,) negative log-likelihood of each gap (seconds, float64) under hazard logits (N, K); censored (N,)."""
        logits, g = logits.float(), gap.double()
        k = logits.shape[1]
        edges = self.edges
        j = (torch.bucketize(g, edges[1:], right=True)).clamp(max=k)  # (N,) bucket, k = beyond the last
        log_s = F.logsigmoid(-logits)  # log (1 - h_k)
        before = torch.arange(k, device=logits.device)[None, :] < j[:, None]  # (N, K) buckets fully survived
        ll = (log_s * before).sum(1)
        inside = j < k
        jj = j.clamp(max=k - 1)
        width = edges[jj + 1] - edges[jj]
        u = ((g - edges[jj]) / width).clamp(0, 1).float()
        at_j = lambda t: t.gather(1, jj[:, None])[:, 0]  # noqa: E731
        # log(lambda_k w_k) = log(-log(1 - h_k)) = log(softplus(logit)), which is the logit itself far below 0
        log_rate = torch.where(logits < -15, logits, torch.log(F.softplus(logits.clamp(min=-15))))
        ll = ll + torch.where(inside, u * at_j(log_s), 0.0) + torch.where(inside & ~censored, at_j(log_rate), 0.0)
        return -ll

    def loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        h, feats, gap, censored = self.targets(hidden, batch)
        n = gap.new_tensor(gap.numel(), dtype=torch.int64)
        loss = self.nll(self(h, feats), gap, censored).sum() / n.clamp(min=1)
        stats = {"decay_loss": loss.detach(), "decay_targets": n.detach(), "decay_censored": censored.sum().detach()}
        return loss, stats
