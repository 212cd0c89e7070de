"""Mult-VAE (Liang et al. 2018, "Variational Autoencoders for Collaborative Filtering"): a latent interest model
over the bag of a window's items, in plain torch (no Ray / DeepSpeed).

A user's items (binarized: an item counts once however often it occurs) are L2-normalized, dropped out (input
dropout, training only) and encoded by V -> H (tanh) -> 2D into the mean and log-variance of a diagonal Gaussian
posterior q(z | bag) over D latent interests; the decoder D -> H (tanh) -> V gives a multinomial over the catalog.
Loss per bag: -sum over its items of log softmax(decoder(z)) + beta * KL(q || N(0, I)), beta rising linearly from
0 to args.vae_beta over args.vae_anneal_steps training batches (the paper's KL annealing), counted in a buffer that
checkpoints carry, so a resumed run continues the schedule.

It reads the same batches as the sequence models (interest_core.batches.collate): a training window's bag is all of
its events (items and the last target), an evaluation row's bag its history. With args.num_categories > 0 the bag
holds the known categories of its items too (token num_items + category id), encoded and reconstructed with the
items by the same multinomial, so the latent carries the category-level interests; the item -> category map is a
buffer, set from the data's items table (set_item_categories) and saved with the weights. The bag's encoder input is an
embedding-bag lookup of V x H weights, so no (B, V) input is built; only the decoder's (B, V) output is.
`encode` returns the posterior mean as a one-position sequence (B, 1, D): a bag has one state, the user's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interest_core.contract import OOV_ID
from interest_core.modelargs import ModelArgs, flops_per_token


def _unique_items(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) item ids -> (sorted ids (B, N), float mask (B, N) of each row's distinct real items)."""
    ids, _ = items.sort(dim=1)
    first = torch.ones_like(ids, dtype=torch.bool)
    first[:, 1:] = ids[:, 1:] != ids[:, :-1]
    return ids, (first & (ids > OOV_ID)).float()


class MultVAE(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        v, h, d = args.num_items + args.num_categories, args.vae_hidden, args.dim
        self.enc_in = nn.EmbeddingBag(v, h, mode="sum")  # (V, H): the first layer on a sparse bag
        self.enc_bias = nn.Parameter(torch.zeros(h))
        self.enc_out = nn.Linear(h, 2 * d)
        self.dec_hidden = nn.Linear(d, h)
        self.dec_out = nn.Linear(h, v)
        self.heads = nn.ModuleDict()  # no per-event state: the next-action and decay heads need a sequence model
        self.register_buffer("anneal_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("item_category", torch.zeros(args.num_items, dtype=torch.long))
        for w in (self.enc_in.weight, self.enc_out.weight, self.dec_hidden.weight, self.dec_out.weight):
            nn.init.xavier_uniform_(w)
        for b in (self.enc_bias, self.enc_out.bias, self.dec_hidden.bias, self.dec_out.bias):
            nn.init.normal_(b, std=0.001)

    def posterior(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) bag tokens (bag() / with_categories()), any padding -> (mean, log-variance), each (B, D). An empty
        bag gets the prior's neighbourhood: its encoder input is zero."""
        ids, keep = _unique_items(items)
        weight = keep / keep.sum(1, keepdim=True).clamp(min=1).sqrt()  # L2-normalized binary bag
        if self.training and self.args.dropout > 0:
            weight = F.dropout(weight, self.args.dropout)
        h = torch.tanh(self.enc_in(ids, per_sample_weights=weight) + self.enc_bias)  # (B, H)
        mean, logvar = self.enc_out(h).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) latent -> (B, V + C) logits of the multinomial over the catalog (and the category tokens)."""
        return self.dec_out(torch.tanh(self.dec_hidden(z)))

    def set_item_categories(self, item_category) -> None:
        """item id -> category id (0 = unknown), from the data's items table (interest_core.contract)."""
        cats = torch.as_tensor(item_category, dtype=torch.long)
        if cats.shape != self.item_category.shape or (self.args.num_categories and
                                                      int(cats.max()) >= self.args.num_categories):
            raise ValueError(f"item categories of shape {tuple(cats.shape)} (max {int(cats.max())}) do not fit a "
                             f"model of {self.args.num_items} items and {self.args.num_categories} categories")
        self.item_category.copy_(cats)

    def with_categories(self, items: torch.Tensor) -> torch.Tensor:
        """(B, N) item ids -> (B, 2N): the items and their known categories' tokens (0 where unknown)."""
        if not self.args.num_categories:
            return items
        cats = self.item_category[items]
        return torch.cat([items, torch.where(cats > 0, cats + self.args.num_items, 0)], dim=1)

    def bag(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A batch's bags: a training window's inputs plus its last target, an evaluation row's history; with
        their categories' tokens."""
        items = batch["items"]
        if "targets" in batch:
            items = torch.cat([items, batch["targets"][:, -1:]], dim=1)
        return self.with_categories(items)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.posterior(self.bag(batch))[0][:, None]  # (B, 1, D)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.posterior(self.bag(batch))[0]  # (B, D): the posterior mean

    def scores(self, user_emb: torch.Tensor) -> torch.Tensor:
        """(B, D) posterior means -> (B, V) item scores; padding and OOV are never recommended."""
        scores = self.decode(user_emb)[:, : self.args.num_items]
        scores[:, : OOV_ID + 1] = float("-inf")
        return scores

    def score_all(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scores(self.user_embedding(batch))

    def beta(self) -> float:
        a = self.args
        if a.vae_anneal_steps == 0:
            return a.vae_beta
        return a.vae_beta * min(1.0, float(self.anneal_count) / a.vae_anneal_steps)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over non-empty bags of the multinomial negative log-likelihood + beta * KL."""
        items = self.bag(batch)
        mean, logvar = self.posterior(items)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        logp = F.log_softmax(self.decode(z), dim=1)  # (B, V)
        ids, keep = _unique_items(items)
        nll = -(logp.gather(1, ids) * keep).sum(1)  # (B,)
        kl = 0.5 * (logvar.exp() + mean**2 - 1 - logvar).sum(1)  # (B,)
        rows = (keep.sum(1) > 0).float()  # padding rows (no items) carry no loss
        n = rows.sum().clamp(min=1)
        beta = self.beta()
        total = ((nll + beta * kl) * rows).sum() / n
        if self.training:
            self.anneal_count += 1
        stats = {"item_loss": ((nll * rows).sum() / n).detach(), "kl": ((kl * rows).sum() / n).detach(),
                 "beta": torch.tensor(beta), "item_targets": keep.sum().long(), "loss": total.detach()}
        return total, stats

    forward = loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; non_embedding=True leaves out the catalog-sized layers (encoder input, decoder output),
        as the sequence models leave out their item table."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(p.numel() for p in (self.enc_in.weight, self.enc_bias, self.dec_out.weight, self.dec_out.bias))
        return n

    def flops_per_token(self) -> int:
        return flops_per_token(self.args)
