"""Mult-VAE bag model (ray_train/models/vae.py): bag semantics, the annealed loss, the analytic count, learning."""
from __future__ import annotations

import pytest
import torch

from interest_core.config import ConfigError, load_config
from interest_core.modelargs import ModelArgs, count_params, model_args_for_data
from ray_train.models import MultVAE, build_model

V, CLUSTERS = 82, 4  # ids 2..81: four clusters of 20 items


def vae_args(**kw) -> ModelArgs:
    base = dict(num_items=V, num_event_types=3, max_len=12, dim=8, arch="vae", vae_hidden=32, dropout=0.0,
                vae_anneal_steps=10, vae_beta=0.2)
    return ModelArgs(**{**base, **kw})


def cluster_bags(n: int, L: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L) left-padded bags drawn from one cluster each, and each bag's cluster."""
    g = torch.Generator().manual_seed(seed)
    cluster = torch.randint(0, CLUSTERS, (n,), generator=g)
    items = 2 + cluster[:, None] * 20 + torch.randint(0, 20, (n, L), generator=g)
    pad = torch.arange(L)[None, :] < torch.randint(0, L - 3, (n, 1), generator=g)
    return items.masked_fill(pad, 0), cluster


def as_batch(items: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"items": items, "event_types": (items > 0).long(), "ts": items * 0}


def test_the_analytic_count_is_the_built_model_and_vae_has_no_heads():
    args = vae_args()
    model = build_model(args)
    assert isinstance(model, MultVAE) and len(model.heads) == 0
    assert count_params(args) == model.num_params() == sum(p.numel() for p in model.parameters())
    assert count_params(args, non_embedding=True) == model.num_params(non_embedding=True) > 0
    assert model.flops_per_token() > 0
    cfg = load_config("tiny-cpu", ["model.arch=vae"])
    manifest = {"vocab": {"num_items": V, "num_event_types": 3}, "split": {"max_len": 12, "kind": "time",
                "valid_cutoff_ts": 100}, "counts": {"event_types_train": {"view": 5, "buy": 1}}, "time_range": {"first_ts": 0}}
    got = model_args_for_data(cfg, manifest)
    assert got.arch == "vae" and got.loss == "full" and got.event_type_loss_weight == got.decay_loss_weight == 0
    with pytest.raises(ConfigError, match="model.loss=sampled"):
        load_config("tiny-cpu", ["model.arch=vae", "model.loss=sampled"])


def test_a_bag_ignores_order_repeats_padding_and_oov():
    model = build_model(vae_args()).eval()
    a = torch.tensor([[0, 0, 5, 9, 5, 1, 7]])
    b = torch.tensor([[7, 9, 5, 0, 0, 0, 0]])
    with torch.no_grad():
        ma, la = model.posterior(a)
        mb, lb = model.posterior(b)
        other, _ = model.posterior(torch.tensor([[7, 9, 6, 0, 0, 0, 0]]))
    assert torch.allclose(ma, mb, atol=1e-6) and torch.allclose(la, lb, atol=1e-6)
    assert not torch.allclose(ma, other, atol=1e-4)
    scores = model.score_all(as_batch(b))
    assert scores.shape == (1, V) and torch.isinf(scores[0, :2]).all() and torch.isfinite(scores[0, 2:]).all()
    assert model.encode(as_batch(b)).shape == (1, 1, 8)


def test_the_kl_weight_anneals_over_training_batches_only_and_empty_rows_carry_no_loss():
    model = build_model(vae_args(vae_anneal_steps=4)).train()
    items, _ = cluster_bags(6)
    batch = {**as_batch(items), "targets": torch.zeros_like(items)}
    betas = []
    for _ in range(6):
        _, stats = model.loss(batch)
        betas.append(float(stats["beta"]))
    assert betas == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    model.eval()
    model.loss(batch)
    assert int(model.anneal_count) == 6  # evaluation does not advance the schedule
    padded = {k: torch.cat([v, torch.zeros_like(v)]) for k, v in batch.items()}
    with torch.no_grad():
        assert float(model.loss(padded)[0]) == pytest.approx(float(model.loss(batch)[0]), rel=1e-6)
    assert "anneal_count" in model.state_dict()  # a checkpoint resumes the schedule


def test_learns_planted_interest_clusters():
    torch.manual_seed(0)
    model = build_model(vae_args(dropout=0.5, vae_anneal_steps=50)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        items, _ = cluster_bags(64, seed=step)
        loss, _ = model.loss({**as_batch(items), "targets": torch.zeros_like(items)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    items, cluster = cluster_bags(200, seed=10_000)
    with torch.no_grad():
        top = model.score_all(as_batch(items)).topk(10, dim=1).indices
        mean, _ = model.posterior(items)
    in_cluster = ((top - 2) // 20 == cluster[:, None]).float().mean()
    assert in_cluster > 0.95, in_cluster
    # posterior means of one cluster sit closer to each other than to another cluster's
    centers = torch.stack([mean[cluster == c].mean(0) for c in range(CLUSTERS)])
    nearest = torch.cdist(mean, centers).argmin(1)
    assert (nearest == cluster).float().mean() > 0.95


def test_a_bag_with_categories_holds_each_known_category_once_and_scores_items_only():
    args = vae_args(num_categories=5)
    model = build_model(args).eval()
    assert count_params(args) == model.num_params() and count_params(args, True) == model.num_params(True)
    cats = torch.zeros(V, dtype=torch.long)
    cats[2:42], cats[42:62] = 1, 3  # items 62.. have no known category
    model.set_item_categories(cats)
    bag = model.with_categories(torch.tensor([[0, 2, 3, 70]]))
    assert bag.tolist() == [[0, 2, 3, 70, 0, V + 1, V + 1, 0]]
    with torch.no_grad():
        a, _ = model.posterior(bag)
        b, _ = model.posterior(model.with_categories(torch.tensor([[2, 3, 70]])))
        c, _ = model.posterior(torch.tensor([[2, 3, 70]]))  # the same items without their category
        assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-4)
        assert model.score_all(as_batch(torch.tensor([[2, 3, 70]]))).shape == (1, V)
    assert torch.equal(build_model(args).state_dict()["item_category"], torch.zeros(V, dtype=torch.long))
    restored = build_model(args)
    restored.load_state_dict(model.state_dict())  # the map travels with the weights
    assert torch.equal(restored.item_category, cats)
    with pytest.raises(ValueError, match="do not fit"):
        model.set_item_categories(torch.full((V,), 7))
