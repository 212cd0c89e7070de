"""The content tower and the item text: unseen items are their content, features reach the score, counts match."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interest_core.item_features import TEXT_DIM, ItemArrays, brand_bucket, item_text, text_hash
from interest_core.modelargs import ModelArgs, count_params
from ray_train.models import InterestModel

V, D = 30, 16


def content_args(features=("category", "brand", "price", "text"), **kw) -> ModelArgs:
    base = dict(num_items=V, num_event_types=3, max_len=8, dim=D, n_layers=1, n_heads=2, dropout=0.0,
                item_features=features, num_categories=5 if "category" in features else 0,
                brand_buckets=7 if "brand" in features else 0)
    return ModelArgs(**{**base, **kw})


def arrays(seen_upto=20, text=True, seed=0) -> ItemArrays:
    rng = np.random.default_rng(seed)
    seen = np.zeros(V, dtype=bool)
    seen[2:seen_upto] = True
    emb = rng.normal(size=(V, TEXT_DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[:2] = 0
    return ItemArrays(seen=seen, category=rng.integers(1, 5, V), brand=rng.integers(0, 8, V),
                      price=rng.integers(0, 32, V), text=emb if text else None)


def test_an_unseen_item_is_its_content_and_gets_no_gradient_on_its_id_row():
    torch.manual_seed(0)
    model = InterestModel(content_args())
    a = arrays()
    a.category[25], a.brand[25], a.price[25], a.text[25] = a.category[24], a.brand[24], a.price[24], a.text[24]
    model.set_item_arrays(a)
    tower = model.embed.item
    with torch.no_grad():
        tower.id.weight[24:26] += 5.0  # large ID rows: only the seen item may show them
    emb = model.item_emb
    assert torch.allclose(emb[24], emb[25]), "two unseen items with the same content must be the same item"
    # a seen item with the same content as an unseen one differs by exactly its ID row
    a.seen[24] = True
    model.set_item_arrays(a)
    assert torch.allclose(model.item_emb[24] - model.item_emb[25], tower.id.weight[24], atol=1e-6)
    batch = {"items": torch.tensor([[0, 3, 25, 4]]), "event_types": torch.tensor([[0, 1, 1, 1]]),
             "ts": torch.tensor([[0, 10, 20, 30]]), "targets": torch.tensor([[0, 25, 4, 26]]),
             "target_event_types": torch.tensor([[0, 1, 1, 1]])}
    model.loss(batch)[0].backward()
    grad = tower.id.weight.grad
    assert grad[25].abs().sum() == 0 and grad[26].abs().sum() == 0 and grad[3].abs().sum() > 0
    assert tower.text.weight.grad.abs().sum() > 0 and tower.category.weight.grad.abs().sum() > 0


def test_text_embeddings_decide_the_scores_of_unseen_items():
    torch.manual_seed(0)
    model = InterestModel(content_args(features=("text",))).eval()
    model.set_item_arrays(arrays(text=True))
    user = torch.randn(2, D)
    before = model.scores(user)[:, 25].clone()
    a = arrays(text=True)
    a.text[25] = -a.text[25]
    model.set_item_arrays(a)
    assert not torch.allclose(model.scores(user)[:, 25], before)


def test_id_dropout_only_in_training():
    model = InterestModel(content_args(features=("category",), id_dropout=0.5))
    model.set_item_arrays(arrays(text=False))
    model.eval()
    assert torch.equal(model.item_emb, model.item_emb)
    model.train()
    torch.manual_seed(1)
    a = model.item_emb
    torch.manual_seed(2)
    assert not torch.allclose(a, model.item_emb)


@pytest.mark.parametrize("features", [("category",), ("brand", "price"), ("text",), ("category", "brand", "price",
                                                                                   "text")])
@pytest.mark.parametrize("arch", ["sasrec", "hstu"])
def test_analytic_param_count_with_the_content_tower(arch, features):
    args = content_args(features=features, arch=arch)
    model = InterestModel(args)
    assert count_params(args) == model.num_params()
    assert count_params(args, non_embedding=True) == model.num_params(non_embedding=True)


def test_wrong_item_arrays_are_refused():
    model = InterestModel(content_args(features=("text",)))
    with pytest.raises(ValueError, match="text embedding matrix"):
        model.set_item_arrays(arrays(text=False))
    with pytest.raises(ValueError, match="expected a subset"):
        content_args(features=("colour",))


def test_item_text_and_keys():
    assert item_text("Toy Story", "Animation, Comedy; 1995", "Animation", None) == \
        "Toy Story. Animation, Comedy; 1995. Animation"
    assert item_text(None, None, "Cat01/Sub02", "Kazo") == "Cat01 > Sub02. brand Kazo"
    assert item_text(None, " ", None, None) == ""
    assert text_hash("a") == text_hash("a") != text_hash("b")
    assert brand_bucket("Kazo", 7) == brand_bucket(" kazo ", 7) and 1 <= brand_bucket("Kazo", 7) <= 7
    assert brand_bucket(None, 7) == 0 and brand_bucket("", 7) == 0


def test_the_packaged_text_encoder_puts_related_titles_closer():
    from ray_train.text_embed import encode, load_encoder

    tok, enc = load_encoder()
    e = encode(tok, enc, ["wireless headphones with noise cancelling", "bluetooth over-ear headphones",
                          "stainless steel garden hose"])
    assert e.shape == (3, TEXT_DIM) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
