"""Step-time cost of the item representation at catalog scale: ID only vs the item-graph fusion (and the content
tower) at 1M items, one optimizer step of the plain model (forward + backward + AdamW) on this machine's CPU.

With the sampled softmax (what model.loss=auto picks for catalogs this size) a step computes only the rows it reads
(inputs, targets, negatives) from their own neighbourhoods (ItemGraph.rows), so its cost follows the batch, not the
catalog: about T x S^H x D for T touched items, S neighbours (model.graph_sample, else data.graph_top_k) and H hops.
The bench prints the ratio to the ID-only step measured in the same run (machines here are noisy), and the memory
the graph buffers take.

    .venv/bin/python bench/graph_bench.py [--items 1000000] [--steps 5]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from interest_core.item_features import TEXT_DIM, ItemArrays
from interest_core.modelargs import ModelArgs
from ray_train.models import InterestModel


def step_seconds(args: ModelArgs, batch: dict, steps: int, graph: tuple | None, text: bool) -> float:
    torch.manual_seed(0)
    model = InterestModel(args)
    v = args.num_items
    if graph is not None:
        model.set_item_graph(*graph)
    if args.item_features:
        rng = np.random.default_rng(0)
        model.set_item_arrays(ItemArrays(seen=np.ones(v, bool), category=rng.integers(0, args.num_categories, v),
                                         brand=np.zeros(v, np.int64), price=np.zeros(v, np.int64),
                                         text=rng.normal(size=(v, TEXT_DIM)).astype(np.float32) if text else None))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators
        t0 = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--top-k", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(2)
    v, k = a.items, a.top_k
    rng = np.random.default_rng(0)
    nbr = rng.integers(2, v, (v, k))  # a random top-K graph of the catalog's size
    w = rng.random((v, k)).astype(np.float32)
    items = torch.from_numpy(rng.integers(2, v, (a.batch, a.max_len + 1)))
    batch = {"items": items[:, :-1], "targets": items[:, 1:], "event_types": torch.ones(a.batch, a.max_len,
                                                                                         dtype=torch.long),
             "target_event_types": torch.ones(a.batch, a.max_len, dtype=torch.long),
             "ts": torch.arange(a.max_len).expand(a.batch, -1) * 60 + 1_700_000_000}
    base = dict(num_items=v, num_event_types=2, max_len=a.max_len, dim=64, n_layers=2, n_heads=2, dropout=0.0,
                loss="sampled", num_negatives=256, event_type_loss_weight=0.0, graph_top_k=k)
    print(f"{v:,} items, top-{k} graph buffers {(nbr.nbytes + w.nbytes) / 2**20:.0f} MB (int64 ids + float32 "
          f"weights); batch {a.batch} x {a.max_len}, sampled softmax (256 negatives), dim 64", flush=True)
    ref = step_seconds(ModelArgs(**base), batch, a.steps, None, False)
    print(f"ID only                       {ref:7.3f} s/step  1.00x", flush=True)
    for name, kw, text in (("+ graph (1 hop)", dict(graph_hops=1), False),
                           ("+ graph (2 hops)", dict(graph_hops=2), False),
                           ("+ graph (2 hops, sample 5)", dict(graph_hops=2, graph_sample=5), False),
                           ("+ category + text", dict(item_features=("category", "text"), num_categories=100), True),
                           ("+ both (2 hops, sample 5)", dict(graph_hops=2, graph_sample=5,
                                                             item_features=("category", "text"), num_categories=100),
                            True)):
        s = step_seconds(ModelArgs(**base, **kw), batch, a.steps, (nbr, w) if kw.get("graph_hops") else None, text)
        print(f"{name:29s} {s:7.3f} s/step  {s / ref:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
