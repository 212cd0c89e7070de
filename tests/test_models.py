"""Model, loss and head checks at tiny sizes (CPU, a few seconds)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from interest_core.contract import OOV_ID, PAD_ID
from interest_core.modelargs import ModelArgs, count_params
from ray_train.models import Head, InterestModel, NextEventTypeHead, full_softmax_loss, sampled_softmax_loss
from ray_train.models.buckets import log2_bucket
from ray_train.models.hstu import (
    RelativeAttentionBias,
    hstu_attention,
    hstu_attention_reference,
    position_bucket,
    time_bucket,
)
from ray_train.models.model import attention_mask

ARCHS = ["sasrec", "hstu", "gru"]
# every backbone variant the config can build: (arch, ModelArgs overrides)
VARIANTS = [("sasrec", {}), ("hstu", {}), ("sasrec", {"norm": "post", "scale_embeddings": False, "ffn_mult": 4,
                                                      "ffn_activation": "gelu"}), ("sasrec", {"position_anchor": "start"}),
            ("hstu", {"position_anchor": "start"}), ("gru", {}), ("gru", {"n_layers": 1})]
NUM_ITEMS, NUM_TYPES = 40, 5


def tiny_args(arch="sasrec", **kw) -> ModelArgs:
    base = dict(num_items=NUM_ITEMS, num_event_types=NUM_TYPES, max_len=16, dim=16, n_layers=2, n_heads=2,
                dropout=0.0, arch=arch, num_negatives=16)
    return ModelArgs(**{**base, **kw})


def make_batch(B=4, L=10, num_items=NUM_ITEMS, seed=0, pads=(0, 3, 6, 9)) -> dict[str, torch.Tensor]:
    """Random left-padded batch; row b has pads[b % len(pads)] padded positions."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, num_items, (B, L), generator=g)  # includes some OOV inputs
    types = torch.randint(1, NUM_TYPES, (B, L), generator=g)
    gaps = torch.randint(0, 100_000, (B, L), generator=g)
    ts = 1_700_000_000 + gaps.cumsum(1)
    for b in range(B):
        p = pads[b % len(pads)]
        items[b, :p], types[b, :p], ts[b, :p] = 0, 0, 0
    targets = torch.cat([items[:, 1:], torch.randint(2, num_items, (B, 1), generator=g)], 1)
    targets[items == PAD_ID] = 0
    target_types = torch.cat([types[:, 1:], torch.randint(1, NUM_TYPES, (B, 1), generator=g)], 1)
    target_types[items == PAD_ID] = 0
    return {"items": items, "event_types": types, "ts": ts, "targets": targets, "target_event_types": target_types}


def seeded_model(args: ModelArgs, seed=0) -> InterestModel:
    torch.manual_seed(seed)
    return InterestModel(args)


# ---------------------------------------------------------------------------------------------- shapes and basics


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_forward_backward_shapes(arch, loss):
    args = tiny_args(arch, loss=loss, dropout=0.2)
    model = seeded_model(args).train()
    batch = make_batch()
    total, stats = model.loss(batch)
    assert total.dim() == 0 and torch.isfinite(total)
    assert set(stats) >= {"loss", "item_loss", "item_targets", "event_type_loss", "event_type_acc"}
    assert not any(v.requires_grad for v in stats.values())
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["embed.item.weight"].abs().sum() > 0
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    model.eval()
    assert model.encode(batch).shape == (4, 10, args.dim)
    assert model.user_embedding(batch).shape == (4, args.dim)
    scores = model.score_all(batch)
    assert scores.shape == (4, NUM_ITEMS)
    assert torch.isneginf(scores[:, PAD_ID]).all() and torch.isneginf(scores[:, OOV_ID]).all()
    assert torch.isfinite(scores[:, 2:]).all()
    total2, _ = model(batch)  # forward == loss
    assert torch.isfinite(total2)


def test_model_args_validation():
    with pytest.raises(ValueError, match="divisible"):
        tiny_args(dim=15)
    with pytest.raises(ValueError, match="auto"):
        tiny_args(loss="auto")
    with pytest.raises(ValueError, match="arch"):
        tiny_args(arch="lstm")


def test_sequence_longer_than_max_len_is_an_error():
    model = seeded_model(tiny_args(max_len=8)).eval()
    with pytest.raises(ValueError, match="max_len"):
        model.encode(make_batch(L=10))


@pytest.mark.parametrize("arch, kw", VARIANTS)
def test_padding_does_not_leak(arch, kw):
    """Valid positions ignore everything at padded ones: amount of padding, their ts / event types, the pad row."""
    model = seeded_model(tiny_args(arch, **kw)).eval()
    batch = make_batch(B=4, L=10, pads=(3,))
    with torch.no_grad():
        ref = model.encode(batch)[:, 3:]
        assert (model.encode(batch)[:, :3] == 0).all()
        # more left padding
        wide = {k: F.pad(v, (5, 0)) for k, v in batch.items()}
        torch.testing.assert_close(model.encode(wide)[:, 8:], ref, rtol=1e-4, atol=1e-5)
        # garbage timestamps / event types at padded positions
        junk = {k: v.clone() for k, v in batch.items()}
        junk["ts"][:, :3] = torch.tensor([5, 1_900_000_000, 77])
        junk["event_types"][:, :3] = torch.tensor([4, 1, 3])
        torch.testing.assert_close(model.encode(junk)[:, 3:], ref, rtol=0, atol=0)
        # whatever the padding item's embedding row holds
        model.embed.item.weight[PAD_ID] = 3.0
        torch.testing.assert_close(model.encode(batch)[:, 3:], ref, rtol=0, atol=0)


@pytest.mark.parametrize("arch, kw", VARIANTS)
def test_causal(arch, kw):
    """Changing the item / type / time of events after t leaves positions <= t unchanged, and changes t+1."""
    model = seeded_model(tiny_args(arch, **kw)).eval()
    batch = make_batch(B=4, L=10)
    t = 6
    future = {k: v.clone() for k, v in batch.items()}
    future["items"][:, t + 1 :] = (future["items"][:, t + 1 :] + 7) % (NUM_ITEMS - 2) + 2
    future["event_types"][:, t + 1 :] = 1
    future["ts"][:, t + 1 :] += 12_345
    with torch.no_grad():
        a, b = model.encode(batch), model.encode(future)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=0)
    assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().amax() > 1e-3
    # and in gradients: position t's output does not depend on the embeddings after it
    x = torch.randn(2, 10, 16, requires_grad=True)
    valid = batch["items"][:2] != PAD_ID
    w = torch.randn(16)  # a random read-out: a post-norm block's outputs sum to a constant over the features
    out = model.gru(x, valid) if arch == "gru" else model.blocks[0](x, attention_mask(valid), batch["ts"][:2])
    (out[:, t] * w).sum().backward()
    assert (x.grad[:, t + 1 :] == 0).all() and x.grad[:, t].abs().sum() > 0


def test_attention_mask():
    valid = torch.tensor([[False, True, True]])
    m = attention_mask(valid)[0, 0]
    assert m.tolist() == [[True, False, False], [False, True, False], [False, True, True]]


# --------------------------------------------------------------------------------------------------------- HSTU


def test_bucket_functions():
    dt = torch.tensor([-5, 0, 1, 2, 3, 6, 7, 2**31 - 2, 2**31 - 1, 10**12])
    expected = [time_bucket(int(d)) for d in dt]  # bit_length, exact
    assert log2_bucket(dt.abs()).tolist() == expected
    assert expected[:7] == [2, 0, 1, 1, 2, 2, 3] and expected[-3:] == [30, 31, 31]
    b = [position_bucket(d, 200) for d in range(200)]
    assert b[:16] == list(range(16)) and b == sorted(b) and b[-1] == 31
    assert [position_bucket(d, 10) for d in range(10)] == list(range(10))


def test_hstu_attention_matches_reference():
    torch.manual_seed(0)
    args = tiny_args("hstu", max_len=40)
    B, H, L, Dh = 2, 2, 7, 4
    rab = RelativeAttentionBias(args).double()
    with torch.no_grad():  # non-trivial bias tables
        rab.pos_bias.weight.normal_()
        rab.time_bias.weight.normal_()
    q, k, v = (torch.randn(B, H, L, Dh, dtype=torch.float64, requires_grad=True) for _ in range(3))
    valid = torch.tensor([[False, False, True, True, True, True, True], [True] * L])
    gaps = torch.tensor([[0, 0, 0, 1, 2, 50, 10**7], [0, 3, 3, 100, 4000, 10**5, 10**9]])
    ts = 1_600_000_000 + gaps.cumsum(1)

    out = hstu_attention(q, k, v, rab(ts), attention_mask(valid), args.max_len)
    ref = hstu_attention_reference(q, k, v, ts, valid, rab.pos_bias.weight, rab.time_bias.weight,
                                   args.max_len, args.max_len)
    torch.testing.assert_close(out, ref)

    w = torch.randn_like(out)
    params = [q, k, v, rab.pos_bias.weight, rab.time_bias.weight]
    g_out = torch.autograd.grad((out * w).sum(), params)
    g_ref = torch.autograd.grad((ref * w).sum(), params)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)
    assert g_out[3].abs().sum() > 0 and g_out[4].abs().sum() > 0


# ------------------------------------------------------------------------------------------------------- losses


def test_full_softmax_loss_matches_cross_entropy():
    torch.manual_seed(0)
    hidden, emb = torch.randn(2, 3, 8), torch.randn(10, 8)
    targets = torch.tensor([[0, 5, 1], [2, 9, 9]])  # 0 and 1 ignored
    logits = hidden.reshape(6, 8) @ emb.T
    logits[:, :2] = -math.inf
    keep = torch.tensor([1, 3, 4, 5])
    expected = F.cross_entropy(logits[keep], targets.reshape(-1)[keep])
    torch.testing.assert_close(full_softmax_loss(hidden, emb, targets), expected)
    empty = full_softmax_loss(hidden.requires_grad_(), emb, torch.zeros(2, 3, dtype=torch.long))
    assert empty.item() == 0 and empty.requires_grad


def test_sampled_equals_full_when_batch_covers_catalog():
    torch.manual_seed(0)
    V = 8
    hidden, emb = torch.randn(2, 6, 4), torch.randn(V, 4)
    targets = torch.tensor([[2, 3, 4, 5, 6, 7], [7, 6, 5, 0, 1, 2]])  # every item is an in-batch candidate
    sampled = sampled_softmax_loss(hidden, emb, targets, num_negatives=50, num_items=V)
    torch.testing.assert_close(sampled, full_softmax_loss(hidden, emb, targets))


def test_sampled_approximates_full_and_keeps_its_ordering():
    """Few in-batch targets, many uniform draws: logQ-corrected loss ~ full CE, and ranks hidden states alike."""
    V, g = 50, torch.Generator().manual_seed(0)
    emb = torch.randn(V, 8, generator=g)
    targets = torch.randint(2, V, (2, 4), generator=g)
    full, sampled = [], []
    for scale in [0.2, 0.5, 1.0, 2.0]:
        hidden = scale * torch.randn(2, 4, 8, generator=g)
        full.append(full_softmax_loss(hidden, emb, targets))
        sampled.append(sampled_softmax_loss(hidden, emb, targets, 20_000, V, generator=g))
    full, sampled = torch.stack(full), torch.stack(sampled)
    torch.testing.assert_close(sampled, full, rtol=0.03, atol=0.03)
    assert torch.equal(full.argsort(), sampled.argsort())
    # without the correction the uniform draws would swamp the denominator
    uncorrected_gap = math.log(20_000 / (V - 2))
    assert uncorrected_gap > 5 * (sampled - full).abs().max()


def test_sampled_matches_hand_computation_and_masks_accidental_hits():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    emb = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([[2, 3]])
    g = torch.Generator().manual_seed(3)
    draws = torch.randint(2, 5, (6,), generator=torch.Generator().manual_seed(3))
    loss = sampled_softmax_loss(hidden, emb, targets, 6, 5, generator=g)
    log_q = math.log(6 / 3)
    expected = []
    for h, t in zip(hidden[0], targets[0].tolist()):
        s = emb @ h
        terms = [s[t], *[s[j] for j in (2, 3) if j != t]]  # positive + other in-batch target
        terms += [s[j] - log_q for j in draws.tolist() if j not in (2, 3)]  # uniform draws outside the batch
        expected.append(torch.logsumexp(torch.stack(terms), 0) - s[t])
    torch.testing.assert_close(loss, torch.stack(expected).mean())

    # every candidate is the positive itself -> all masked -> loss exactly 0
    only = torch.full((1, 2), 2)
    assert sampled_softmax_loss(hidden, emb, only, 32, num_items=3).item() == 0.0


@pytest.mark.parametrize("loss_fn", ["full", "sampled"])
def test_losses_gradient_flows(loss_fn):
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 8, requires_grad=True)
    emb = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(0, 30, (3, 5))
    if loss_fn == "full":
        out = full_softmax_loss(hidden, emb, targets)
    else:
        out = sampled_softmax_loss(hidden, emb, targets, 16, 30)
    out.backward()
    assert hidden.grad.abs().sum() > 0 and emb.grad[2:].abs().sum() > 0
    assert (emb.grad[:2] == 0).all()  # padding / OOV rows never get pushed
    ignored = (targets <= OOV_ID).reshape(-1)
    assert (hidden.grad.reshape(15, 8)[ignored] == 0).all()


# -------------------------------------------------------------------------------------------------------- heads


def test_event_type_head_and_plugin_heads():
    torch.manual_seed(0)
    head = NextEventTypeHead(dim=4, num_event_types=3, loss_weight=0.5, prior=[0.0, 0.8, 0.2])
    hidden = torch.randn(1, 3, 4)
    batch = {"items": torch.tensor([[0, 5, 6]]), "event_types": torch.tensor([[0, 1, 2]]),
             "ts": torch.tensor([[0, 1_700_000_000, 1_700_000_060]]), "target_event_types": torch.tensor([[0, 2, 1]])}
    loss, stats = head.loss(hidden, batch)
    # logit adjustment: the loss reads output + log prior
    adjusted = head(hidden, batch)[0, 1:] + torch.log(torch.tensor([1e-30, 0.8, 0.2])).clamp(min=-1e4)
    torch.testing.assert_close(loss, F.cross_entropy(adjusted, torch.tensor([2, 1])))
    assert stats["event_type_targets"].item() == 2
    torch.testing.assert_close(head.probs(hidden, batch)[0, 1:], torch.softmax(adjusted, -1))

    class ConstantHead(Head):  # a later head only implements the interface
        def loss(self, hidden, batch):
            return hidden.sum() * 0 + 1.0, {"const_loss": torch.tensor(1.0)}

    model = seeded_model(tiny_args(event_type_loss_weight=0.0)).eval()
    assert len(model.heads) == 0
    b = make_batch()
    base, _ = model.loss(b)
    model.heads["const"] = ConstantHead(loss_weight=0.25)
    total, stats = model.loss(b)
    torch.testing.assert_close(total, base + 0.25)
    assert "const_loss" in stats


def test_next_action_head_learns_a_rare_transition_and_stays_calibrated():
    """Types 1 (90% of events, "view"), 2 ("cart"), 3 ("buy"): after a cart the next event is a buy half of the
    time, else a view. From the explicit current-type input alone (the hidden state is zero), the balanced argmax
    after a cart is "buy" (not the majority), and the calibrated probabilities match the planted frequencies."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    B, L = 256, 12
    types = torch.ones(B, L + 1, dtype=torch.int64)
    for t in range(L + 1):
        cart_before = types[:, t - 1] == 2 if t else torch.zeros(B, dtype=torch.bool)
        r = torch.rand(B, generator=g)
        types[:, t] = torch.where(cart_before, torch.where(r < 0.5, 3, 1), torch.where(r < 0.1, 2, 1))
    ts = 1_700_000_000 + 30 * torch.arange(L)[None].expand(B, L)
    batch = {"items": torch.full((B, L), 5), "event_types": types[:, :-1], "ts": ts,
             "target_event_types": types[:, 1:]}
    prior = torch.bincount(types.reshape(-1), minlength=4).double()
    head = NextEventTypeHead(dim=8, num_event_types=4, loss_weight=1.0, prior=(prior / prior.sum()).tolist())
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    hidden = torch.zeros(B, L, 8)
    for _ in range(300):
        loss, _ = head.loss(hidden, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p, balanced = head.probs(hidden, batch), head(hidden, batch)
    after_cart, after_view = batch["event_types"] == 2, batch["event_types"] == 1
    assert (balanced[after_cart][:, 1:].argmax(-1) + 1 == 3).double().mean() > 0.95
    assert abs(p[after_cart][:, 3].mean().item() - 0.5) < 0.08 and p[after_view][:, 3].mean().item() < 0.02
    assert abs(p[after_view][:, 2].mean().item() - 0.1) < 0.03


def test_a_model_saved_with_the_old_linear_event_type_head_is_refused_with_the_fix():
    model = InterestModel(tiny_args())
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("heads.event_type.")}
    sd |= {"heads.event_type.proj.weight": torch.zeros(3, 8), "heads.event_type.proj.bias": torch.zeros(3)}
    with pytest.raises(ValueError, match="rerun `interest etl` and `interest train`"):
        model.load_state_dict(sd)


# ------------------------------------------------------------------------------------------------------ training


def planted_batch(B=16, L=8, V=200, seed=0):
    """next item = successor of the current item in the ring 2..V-1; event type follows from the item."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, V - 2, (B, 1), generator=g)
    seq = 2 + (start + torch.arange(L + 1)) % (V - 2)  # (B, L+1)
    types = 1 + seq % (NUM_TYPES - 1)
    ts = 1_700_000_000 + torch.randint(1, 1000, (B, L + 1), generator=g).cumsum(1)
    batch = {"items": seq[:, :-1], "event_types": types[:, :-1], "ts": ts[:, :-1],
             "targets": seq[:, 1:], "target_event_types": types[:, 1:]}
    pads = torch.randint(0, L - 1, (B,), generator=g)
    pad = torch.arange(L)[None, :] < pads[:, None]
    return {k: v.masked_fill(pad, 0) for k, v in batch.items()}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_overfits_planted_pattern(arch, loss):
    V = 200  # > the ~70 targets of a batch, so the sampled loss really relies on its uniform negatives
    torch.manual_seed(0)
    model = InterestModel(tiny_args(arch, num_items=V, max_len=8, dim=32, loss=loss, num_negatives=16)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(100):
        batch = planted_batch(V=V, seed=step)
        assert len(torch.unique(batch["targets"])) < V // 2
        total, _ = model.loss(batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    model.eval()
    batch = planted_batch(V=V, seed=999)
    with torch.no_grad():
        pred = model.score_all(batch).argmax(-1)
    assert (pred == batch["targets"][:, -1]).float().mean() > 0.9


# ------------------------------------------------------------------------------------------ accounting, checkpointing


@pytest.mark.parametrize("arch", ARCHS)
def test_num_params_and_flops(arch):
    model = seeded_model(tiny_args(arch))
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    assert 0 < model.num_params(non_embedding=True) < model.num_params()
    # the planner's analytic count (no model built) is the built model's count
    assert count_params(model.args) == model.num_params()
    assert count_params(model.args, non_embedding=True) == model.num_params(non_embedding=True)
    f2 = model.flops_per_token()
    f4 = seeded_model(tiny_args(arch, n_layers=4)).flops_per_token()
    assert 0 < f2 < f4
    assert seeded_model(tiny_args(arch, loss="sampled")).flops_per_token() < f2  # 16 negatives < 40 items


def test_one_event_type_in_the_data_switches_the_event_type_input_and_head_off():
    from interest_core.config import load_config
    from interest_core.modelargs import model_args_for_data

    manifest = {"vocab": {"num_items": 50, "num_event_types": 6}, "split": {"max_len": 10},
                "counts": {"event_types_train": {"view": 90, "click": 0, "cart": 0, "fav": 0, "buy": 0}}}
    cfg = load_config("tiny-cpu")
    one = model_args_for_data(cfg, manifest)
    assert not one.event_type_input and one.event_type_loss_weight == 0
    model = InterestModel(one)
    assert model.embed.event_type is None and "event_type" not in model.heads
    assert count_params(one) == model.num_params()
    manifest["counts"]["event_types_train"]["buy"] = 3
    two = model_args_for_data(cfg, manifest)
    assert two.event_type_input and two.event_type_loss_weight == cfg.model.event_type_loss_weight


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kw", [dict(), dict(event_type_loss_weight=0.0), dict(n_layers=3, dim=24, n_heads=3),
                                dict(max_len=7, num_items=1000, num_event_types=9, loss="sampled"),
                                dict(ffn_mult=4, ffn_activation="gelu"), dict(event_type_input=False),
                                dict(norm="post", scale_embeddings=False)])
def test_analytic_param_count_equals_the_built_model(arch, kw):
    args = tiny_args(arch, **kw)
    model = InterestModel(args)
    assert count_params(args) == model.num_params()
    assert count_params(args, non_embedding=True) == model.num_params(non_embedding=True)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_activation_checkpointing_is_exact(arch, dropout):
    args = tiny_args(arch, dropout=dropout)
    plain, ckpt = seeded_model(args).train(), seeded_model(replace(args, activation_checkpointing=True)).train()
    batch = make_batch()
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(1)  # same dropout masks
        total, _ = model.loss(batch)
        total.backward()
        results.append((total.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    for name, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][name], msg=name)


def _reference_pad(seqs, length):
    out = torch.zeros(len(seqs), length, dtype=torch.int64)
    for i, s in enumerate(seqs):
        s = list(s)[-length:]
        if s:
            out[i, length - len(s):] = torch.tensor(s)
    return out


def test_collate_reads_the_censoring_marker_and_user_scalars():
    """A split=time window ends with the marker (item 0 at the end of observation): its gap is a censored target
    with no next-item target; gaps before first_target carry no loss; n_before / first_ts pass through."""
    from interest_core.batches import collate

    rows = {"items": [[2, 3, 4, 0], [5, 6, 7]], "event_types": [[1, 1, 1, 0], [1, 1, 1]],
            "ts": [[0, 10, 30, 100], [0, 5, 7]], "first_target": [2, 1], "n_before": [4, 0], "first_ts": [-50, 0]}
    b = collate(rows, 4, targets=True)
    assert b["targets"].tolist() == [[0, 0, 4, 0], [0, 0, 6, 7]]
    assert b["target_gap"].tolist() == [[-1, -1, 20, 70], [-1, -1, 5, 2]]
    assert b["target_censored"].tolist() == [[False, False, False, True], [False] * 4]
    assert b["n_before"].tolist() == [4, 0] and b["first_ts"].tolist() == [-50, 0]


def test_collate_matches_a_per_row_reference():
    """The one vectorised collate equals a per-row loop, for Arrow batches (sliced) and Python columns alike."""
    import numpy as np
    import pyarrow as pa

    from interest_core.batches import collate

    rng = np.random.default_rng(0)
    rows = [rng.integers(2, 100, size=rng.integers(1, 30)).tolist() for _ in range(300)]
    cols = {"items": rows, "event_types": [[1] * len(r) for r in rows], "ts": [list(range(len(r))) for r in rows],
            "dt": [[0] + [1] * (len(r) - 1) for r in rows]}
    table = pa.table(cols)
    for sl in (slice(0, 300), slice(37, 101)):
        part = {k: v[sl] for k, v in cols.items()}
        want = {k: _reference_pad([r[:-1] for r in part[k]], 20) for k in cols}
        want["targets"] = _reference_pad([r[1:] for r in part["items"]], 20)
        want["target_event_types"] = _reference_pad([r[1:] for r in part["event_types"]], 20)
        want["target_gap"] = torch.where(want["items"] != 0, 1, -1)  # ts are 0, 1, 2, ...
        want["target_censored"] = torch.zeros_like(want["items"], dtype=torch.bool)
        for rows_in in (table.slice(sl.start, sl.stop - sl.start), part):
            got = collate(rows_in, 20, targets=True)
            assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
        got = collate(part, 20)
        assert set(got) == set(cols) and all(torch.equal(got[k], _reference_pad(part[k], 20)) for k in cols)
    # first_target: only targets from that event on carry a loss (0 = none), for Arrow and Python rows alike
    first = rng.integers(1, 4, size=300).tolist()
    want = _reference_pad([[x if j + 1 >= f else 0 for j, x in enumerate(r[1:])] for r, f in zip(rows, first)], 20)
    for rows_in in (pa.table({**cols, "first_target": first}), {**cols, "first_target": first}):
        got = collate(rows_in, 20, targets=True)
        assert torch.equal(got["targets"], want)
        assert torch.equal(got["target_event_types"] > 0, want > 0)
