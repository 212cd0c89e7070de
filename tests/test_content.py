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


def test_text_embeddings_from_the_driver_and_from_ray_data_actors_agree(ray_session):
    """A small catalog is encoded in the calling process, a large one (or one with actors asked for) by a Ray Data
    actor pool: the same vectors either way, in the cache's schema."""
    import pyarrow as pa

    from interest_core.item_features import TEXT_CACHE_SCHEMA
    from ray_train.text_embed import _encode_missing

    texts = ["wireless headphones", "garden hose, 20 m", "red cotton shirt", "bluetooth speaker"] * 3
    rows = pa.table({"item_id": [f"i{k}" for k in range(len(texts))], "text_hash": [text_hash(t) for t in texts],
                     "text": texts})
    here, pool = _encode_missing(rows, None), _encode_missing(rows, 1)
    assert here.schema == pool.schema == TEXT_CACHE_SCHEMA
    by_id = dict(zip(pool.column("item_id").to_pylist(), np.asarray(pool.column("embedding").to_pylist())))
    assert np.allclose(np.asarray(here.column("embedding").to_pylist()),
                       [by_id[i] for i in here.column("item_id").to_pylist()], atol=1e-5)


# ------------------------------------------------------------------------------------------------ item-graph fusion


def graph_args(**kw) -> ModelArgs:
    base = dict(num_items=V, num_event_types=3, max_len=8, dim=D, n_layers=1, n_heads=2, dropout=0.0, graph_hops=2,
                graph_top_k=3)
    return ModelArgs(**{**base, **kw})


def ring_graph(k=3):
    """Item v's neighbours: v+1, v+2, v+3 (ids 2..V-1 wrapping), weights 3, 2, 1; items 25.. have none."""
    nbr = np.zeros((V, k), dtype=np.int64)
    w = np.zeros((V, k), dtype=np.float32)
    for v in range(2, 25):
        nbr[v] = [(v - 2 + j) % 23 + 2 for j in (1, 2, 3)]
        w[v] = [3, 2, 1]
    return nbr, w


@pytest.mark.parametrize("self_loop", [True, False])
def test_graph_fusion_adds_the_gated_neighbourhood(self_loop):
    """By hand: two hops of the row-normalized graph, their mean, the gate; with self-loops the graph is
    (A + I) / 2 on items with edges and I on the others (which then aggregate their own row), without them A
    alone (items without edges aggregate 0 and keep their row)."""
    torch.manual_seed(0)
    model = InterestModel(graph_args(graph_self_loop=self_loop)).eval()
    model.set_item_graph(*ring_graph())
    rows = model.embed.item.weight
    fused = model.item_emb
    nbr, w = ring_graph()
    a = torch.zeros(V, V) if not self_loop else torch.eye(V)
    for v in range(2, 25):
        a[v] = 0
        a[v, torch.as_tensor(nbr[v])] = torch.as_tensor(w[v] / w[v].sum())
        if self_loop:
            a[v] = (a[v] + torch.eye(V)[v]) / 2
    agg = (a @ rows + a @ (a @ rows)) / 2
    gate = torch.sigmoid(model.graph.gate(torch.cat([rows, agg], 1)))
    torch.testing.assert_close(fused, rows + gate * agg)
    if not self_loop:
        assert torch.equal(fused[25:], rows[25:])  # no edges: unchanged
    batch = {"items": torch.tensor([[0, 3, 5, 4]]), "event_types": torch.tensor([[0, 1, 1, 1]]),
             "ts": torch.tensor([[0, 10, 20, 30]]), "targets": torch.tensor([[0, 5, 4, 6]]),
             "target_event_types": torch.tensor([[0, 1, 1, 1]])}
    model.train()
    model.loss(batch)[0].backward()
    assert model.graph.gate.weight.grad.abs().sum() > 0
    # item 9 is nobody's input or target here, but item 6's neighbourhood reaches it: its row learns from the graph
    assert model.embed.item.weight.grad[9].abs().sum() > 0


def test_graph_neighbour_sampling_only_in_training():
    torch.manual_seed(0)
    model = InterestModel(graph_args(graph_sample=1))
    model.set_item_graph(*ring_graph())
    model.eval()
    full = model.item_emb.detach()
    model.train()
    torch.manual_seed(3)
    sampled = model.item_emb.detach()
    assert not torch.allclose(full, sampled) and torch.equal(full[25:], sampled[25:])


@pytest.mark.parametrize("hops", [1, 2])
def test_touched_rows_equal_the_full_propagation_and_train_only_what_they_read(hops):
    """The sampled softmax reads only the rows of a step's inputs, targets and negatives: graph.rows computes them
    from their own neighbourhoods, equal to the full table's rows; the loss path through them trains."""
    torch.manual_seed(0)
    model = InterestModel(graph_args(graph_hops=hops, item_features=("category",), num_categories=5,
                                     loss="sampled", num_negatives=4)).eval()
    model.set_item_graph(*ring_graph())
    model.set_item_arrays(arrays(text=False))
    ids = torch.tensor([0, 1, 3, 7, 24, 26, 29])
    with torch.no_grad():
        torch.testing.assert_close(model.graph.rows(ids, model.embed.item), model.item_emb[ids])
        rows = model.touched_rows(torch.tensor([[7, 3], [0, 26]]), torch.tensor([24]))
        torch.testing.assert_close(rows[torch.tensor([[26, 7], [24, 24]])], model.item_emb[torch.tensor([[26, 7],
                                                                                                    [24, 24]])])
    batch = {"items": torch.tensor([[0, 3, 5, 4]]), "event_types": torch.tensor([[0, 1, 1, 1]]),
             "ts": torch.tensor([[0, 10, 20, 30]]), "targets": torch.tensor([[0, 5, 4, 6]]),
             "target_event_types": torch.tensor([[0, 1, 1, 1]])}
    model.train()
    torch.manual_seed(5)
    negatives = torch.randint(2, V, (4,)).tolist()  # the loss's first random draw: its uniform negatives
    torch.manual_seed(5)
    model.loss(batch)[0].backward()
    assert model.graph.gate.weight.grad.abs().sum() > 0
    grad = model.embed.item.id.weight.grad.abs().sum(1)
    touched = {3, 4, 5, 6} | set(negatives)
    reach = touched | {(v - 2 + j) % 23 + 2 for v in touched if v < 25 for j in range(1, 3 * hops + 1)}
    trained = {v for v in range(V) if grad[v] > 0}
    assert {3, 4, 5, 6} <= trained <= reach and len(reach) < V - 2


@pytest.mark.parametrize("arch", ["sasrec", "gru"])
def test_analytic_param_count_with_the_graph(arch):
    args = graph_args(arch=arch, item_features=("category",), num_categories=5)
    model = InterestModel(args)
    assert count_params(args) == model.num_params()
    assert count_params(args, non_embedding=True) == model.num_params(non_embedding=True)


def test_graph_arrays_read_the_etl_graph(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from interest_core.item_features import graph_arrays

    (tmp_path / "graph").mkdir()
    pq.write_table(pa.table({"src": pa.array([2, 2, 3], pa.int32()), "dst": pa.array([3, 4, 2], pa.int32()),
                             "weight": [2.0, 0.5, 2.0], "rank": pa.array([1, 2, 1], pa.int32())}),
                   tmp_path / "graph" / "part-0.parquet")
    nbr, w = graph_arrays(tmp_path, 6, 2)
    assert nbr.tolist() == [[0, 0], [0, 0], [3, 4], [2, 0], [0, 0], [0, 0]]
    assert w[2].tolist() == [2.0, 0.5] and w[3].tolist() == [2.0, 0.0]
    nbr1, _ = graph_arrays(tmp_path, 6, 1)
    assert nbr1[:, 0].tolist() == [0, 0, 3, 2, 0, 0]


def test_the_content_towers_sampled_loss_reads_only_touched_rows_and_equals_the_full_tables():
    from ray_train.models.losses import sampled_softmax_loss

    torch.manual_seed(0)
    model = InterestModel(content_args(loss="sampled", num_negatives=5)).eval()
    model.set_item_arrays(arrays())
    batch = {"items": torch.tensor([[0, 3, 5, 4], [2, 8, 9, 27]]), "event_types": torch.ones(2, 4, dtype=torch.long),
             "ts": torch.tensor([[0, 10, 20, 30]] * 2), "targets": torch.tensor([[0, 5, 4, 6], [8, 9, 27, 11]]),
             "target_event_types": torch.ones(2, 4, dtype=torch.long)}
    torch.manual_seed(7)
    touched = model.loss(batch)[1]["item_loss"]
    torch.manual_seed(7)
    uniform = torch.randint(2, V, (5,))
    with torch.no_grad():
        table = model.item_emb
        full = sampled_softmax_loss(model.encode(batch), table, batch["targets"], 5, V, uniform=uniform)
    torch.testing.assert_close(touched, full)
