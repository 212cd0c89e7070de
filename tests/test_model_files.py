"""Serving files (interest/model_files.py) and `interest recommend`: the ONNX user encoder against PyTorch, the
safetensors round trip, the TorchScript fallback, the CLI's output and its errors. No Ray, no Spark."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
import torch

from interest.cli import main
from interest.model_files import OnnxRecommender, load_torch_model, write_model_files
from interest_core.batches import collate
from interest_core.contract import OOV_ID
from interest_core.modelargs import ModelArgs
from ray_train.models import InterestModel

NUM_ITEMS, MAX_LEN = 50, 12
EVENT_TYPES = ["<pad>", "view", "cart", "buy"]
ITEM_IDS = {f"sku-{i:03d}": i for i in range(2, NUM_ITEMS)}  # catalog id -> item_idx


def build(tmp_path, seed: int = 0) -> tuple[InterestModel, dict]:
    args = ModelArgs(num_items=NUM_ITEMS, num_event_types=len(EVENT_TYPES), max_len=MAX_LEN, dim=16, n_layers=2,
                     n_heads=2, dropout=0.0, num_negatives=16)
    torch.manual_seed(seed)
    model = InterestModel(args).eval()
    meta = {"model_args": asdict(args), "epoch": 1,
            "vocab": {"num_items": NUM_ITEMS, "num_event_types": len(EVENT_TYPES), "event_types": EVENT_TYPES}}
    items = pa.table({"item_idx": pa.array(list(ITEM_IDS.values()), pa.int32()), "item_id": list(ITEM_IDS),
                      "category": ["c"] * len(ITEM_IDS)})
    return model, write_model_files(model, meta, items, tmp_path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    model, info = build(out)
    return model, out, info


def make_histories(n: int, longest: int, seed: int) -> list[list[tuple[str, str, int]]]:
    """n chronological histories of 1..longest events (the last one `longest` long): some unknown items, ts ties."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n):
        length = longest if b == n - 1 else int(rng.integers(1, longest + 1))
        ts = 1_700_000_000 + np.cumsum(rng.choice([0, 60, 3600, 86400], length))
        items = [f"sku-{i:03d}" if i < NUM_ITEMS else "never-seen" for i in rng.integers(2, NUM_ITEMS + 3, length)]
        out.append([(item, EVENT_TYPES[int(k)], int(t)) for item, k, t in zip(items, rng.integers(1, 4, length), ts)])
    return out


def torch_reference(model: InterestModel, histories, k: int = 10) -> tuple[np.ndarray, list[list[str]]]:
    """PyTorch user embeddings through interest_core.batches.collate, and the top-k catalog ids."""
    rows = {"items": [[ITEM_IDS.get(i, OOV_ID) for i, _, _ in h] for h in histories],
            "event_types": [[EVENT_TYPES.index(e) for _, e, _ in h] for h in histories],
            "ts": [[t for _, _, t in h] for h in histories]}
    with torch.no_grad():
        emb = model.user_embedding(collate(rows, MAX_LEN))
        top = model.scores(emb).topk(k, dim=1).indices
    names = {v: key for key, v in ITEM_IDS.items()}
    return emb.numpy(), [[names[int(i)] for i in row] for row in top]


def test_onnx_encoder_matches_pytorch_at_any_batch_and_length(exported):
    model, out, info = exported
    assert info["format"] == "onnx" and info["opset"] >= 17 and info["max_abs_diff"] < 1e-4
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "meta.json", "items.parquet",
                                               "user_encoder.onnx", "export.json"}
    assert json.loads((out / "export.json").read_text()) == info
    rec = OnnxRecommender(out)
    for n, longest in [(3, 5), (9, 20)]:  # L = 5 (all fit), L = max_len (some truncated)
        histories = make_histories(n, longest, seed=n)
        inputs = rec.inputs(histories)
        assert inputs[0].shape == (n, min(longest, MAX_LEN))
        ref_emb, ref_top = torch_reference(model, histories)
        assert np.abs(rec.embed(*inputs) - ref_emb).max() < 1e-4
        assert [items for items, _ in rec.recommend(histories, top_k=10)] == ref_top


def test_safetensors_round_trip(exported):
    model, out, _ = exported
    loaded, meta = load_torch_model(out)
    assert meta["vocab"]["event_types"] == EVENT_TYPES
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    histories = make_histories(4, 15, seed=1)
    assert np.array_equal(torch_reference(loaded, histories)[0], torch_reference(model, histories)[0])


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_recommend_cli_prints_top_k_per_user(exported, tmp_path, capsys, fmt):
    model, out, _ = exported
    users = ["007", "u-b", "c"]
    histories = make_histories(len(users), 14, seed=7)
    # The file interleaves users, lists u-b's events newest first and writes c's times as ISO 8601.
    rows = [(u, *e) for j in range(14) for u, h in zip(users, histories) if j < len(h)
            for e in [h[len(h) - 1 - j] if u == "u-b" else h[j]]]
    rows = [(u, i, e, _iso(t) if u == "c" else t) for u, i, e, t in rows]
    path = tmp_path / f"histories.{fmt}"
    if fmt == "csv":
        path.write_text("user_id,item_id,event_type,ts\n" + "".join(f"{u},{i},{e},{t}\n" for u, i, e, t in rows))
    else:
        path.write_text("".join(json.dumps(dict(zip(["user_id", "item_id", "event_type", "ts"], r))) + "\n"
                                for r in rows))
    assert main(["recommend", "--model", str(out), "--history", str(path), "--top-k", "5"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["user_id"] for x in lines] == users  # echoed as given ("007" stays text), first-appearance order
    # A user's events in file order, stably sorted by ts: u-b back in time order, its ties reversed.
    in_time = [sorted(histories_of(rows, u), key=lambda e: e[2]) for u in users]
    _, ref_top = torch_reference(model, in_time, k=5)
    for line, top in zip(lines, ref_top):
        assert line["items"] == top and set(top) <= set(ITEM_IDS)
        assert len(line["scores"]) == 5 and line["scores"] == sorted(line["scores"], reverse=True)

    recs = tmp_path / "recs.jsonl"
    assert main(["recommend", "--model", str(out), "--history", str(path), "--top-k", "40", "--exclude-seen",
                 "--output", str(recs)]) == 0
    for line, h in zip(map(json.loads, recs.read_text().splitlines()), histories):
        seen = {i for i, _, _ in h} & set(ITEM_IDS)
        assert len(line["items"]) == min(40, len(ITEM_IDS) - len(seen)) and not set(line["items"]) & seen


def histories_of(rows, user: str) -> list[tuple[str, str, int]]:
    return [(i, e, int(datetime.fromisoformat(t).timestamp()) if isinstance(t, str) else t)
            for u, i, e, t in rows if u == user]


@pytest.mark.parametrize("csv, expected", [
    ("user_id,item_id,event_type\nu1,sku-002,view\n", "missing column(s) ts"),
    ("user_id,item_id,event_type,ts\nu1,sku-002,view,1700000000\nu1,sku-003,click,1700000001\n",
     "row 2: unknown event type 'click': the model knows view, cart, buy"),
    ("user_id,item_id,event_type,ts\nu1,sku-002,view,yesterday\n", "row 1: ts 'yesterday' is neither"),
    ("user_id,item_id,event_type,ts\nu1,,view,1700000000\n", "row 1: empty item_id"),
])
def test_recommend_cli_names_a_bad_history(exported, tmp_path, capsys, csv, expected):
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    assert main(["recommend", "--model", str(exported[1]), "--history", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err, err


def test_torchscript_fallback_when_onnx_export_fails(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(torch.onnx, "export", fail)
    model, info = build(tmp_path, seed=1)
    assert info["format"] == "torchscript" and "exporter unavailable" in info["onnx_error"]
    assert (tmp_path / "user_encoder.pt").exists() and not (tmp_path / "user_encoder.onnx").exists()
    histories = make_histories(5, 20, seed=3)
    rec = OnnxRecommender(tmp_path)
    ref_emb, ref_top = torch_reference(model, histories)
    assert np.abs(rec.embed(*rec.inputs(histories)) - ref_emb).max() < 1e-4
    assert [items for items, _ in rec.recommend(histories)] == ref_top


@pytest.mark.parametrize("kw", [dict(arch="gru"), dict(item_features=("category", "price", "text"), num_categories=4),
                                dict(graph_hops=2, graph_top_k=3)])
def test_gru_and_content_tower_export_to_onnx(tmp_path, kw):
    """The GRU backbone's rotations and the content tower's item rows survive the export: the ONNX encoder matches
    PyTorch and the served item table is the model's."""
    from interest_core.item_features import TEXT_DIM, ItemArrays

    args = ModelArgs(num_items=NUM_ITEMS, num_event_types=len(EVENT_TYPES), max_len=MAX_LEN, dim=16, n_layers=2,
                     n_heads=2, dropout=0.0, num_negatives=16, **kw)
    torch.manual_seed(0)
    model = InterestModel(args).eval()
    if args.item_features:
        rng = np.random.default_rng(0)
        seen = np.arange(NUM_ITEMS) < 40  # the last ten items never trained: content only
        model.set_item_arrays(ItemArrays(seen=seen, category=rng.integers(0, 4, NUM_ITEMS), brand=np.zeros(NUM_ITEMS,
                              dtype=np.int64), price=rng.integers(0, 32, NUM_ITEMS),
                              text=rng.normal(size=(NUM_ITEMS, TEXT_DIM)).astype(np.float32)))
    if args.graph_hops:
        rng = np.random.default_rng(1)
        model.set_item_graph(rng.integers(0, NUM_ITEMS, (NUM_ITEMS, 3)), rng.random((NUM_ITEMS, 3)))
    meta = {"model_args": asdict(args), "epoch": 1,
            "vocab": {"num_items": NUM_ITEMS, "num_event_types": len(EVENT_TYPES), "event_types": EVENT_TYPES}}
    items = pa.table({"item_idx": pa.array(list(ITEM_IDS.values()), pa.int32()), "item_id": list(ITEM_IDS),
                      "category": ["c"] * len(ITEM_IDS)})
    info = write_model_files(model, meta, items, tmp_path)
    assert info["format"] == "onnx" and info["max_abs_diff"] < 1e-4, info
    served = OnnxRecommender(tmp_path)
    with torch.no_grad():
        np.testing.assert_allclose(served.item_emb, model.item_emb.numpy(), rtol=0, atol=1e-6)
    histories = make_histories(6, MAX_LEN + 3, seed=1)
    emb, _ = torch_reference(model, histories)
    np.testing.assert_allclose(served.embed(*served.inputs(histories)), emb, rtol=1e-4, atol=1e-5)
