"""Categories for a catalog without any: clusters of the items' text embeddings, each named by its words.

    interest categories --data DIR --output catalog.parquet       # then: interest etl ... --items catalog.parquet

Interest tags, segment names and the drift scores that read categories need a category per item. A catalog
without one (the Online Retail log's descriptions, a shop's free-text titles) gets them here: the ETL's items table
(item id, title, description, price, brand) is embedded by the content tower's text encoder
(ray_train/text_embed.py, cached per text like a training run's), the embeddings are clustered with k-means
(cosine: they are L2-normalized), and each cluster is named by the words of its titles that are most particular to
it (the share of its items whose text has the word, less the share of all items that do; at least two items).
The output is a catalog file the ETL reads with --items (spark_jobs/ingest.read_items): item_id, category, brand,
price, title, description. An item without text keeps no category. Spark jobs import no torch: this runs outside
the ETL, between two ETL runs.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interest_core.contract import load_manifest, split_files
from interest_core.data_versions import local_data_dir, resolve_data_dir
from interest_core.item_features import item_text

NAME_WORDS = 3  # words in a category's name
# Words that name no kind of product: pack sizes, colours and connectives of shop titles.
STOP_WORDS = frozenset(
    "a an and the of for in on with to set sets pack box boxes assorted asst size small large mini big new "
    "design designs colour colours color colors white black red blue pink green ivory cream silver gold "
    "retrospot vintage".split())
CATALOG_COLUMNS = ("item_id", "category", "brand", "price", "title", "description")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="ETL output directory or URI (its current version), e.g. --data out/data")
    p.add_argument("--output", required=True, help="catalog file to write (Parquet), e.g. --output catalog.parquet")
    p.add_argument("--clusters", type=int, default=None,
                   help="number of categories (default: sqrt(items with text / 2), within 8..64), e.g. --clusters 40")
    p.add_argument("--text-cache", default=None,
                   help="text embedding cache to reuse and fill (default: text_cache beside the ETL output "
                        "directory), e.g. --text-cache runs/r1/text_cache")
    p.add_argument("--seed", type=int, default=0, help="k-means seed, e.g. --seed 1")


def words(text: str) -> set[str]:
    """The distinct product words of a text: lower-case letters, three or more, stop words aside."""
    return {w for w in re.findall(r"[a-z][a-z'-]+[a-z]", text.lower()) if w not in STOP_WORDS}


def cluster_names(texts: list[str], labels: np.ndarray, k: int) -> list[str]:
    """One name per cluster: its NAME_WORDS most particular words (module docstring), '/'-joined; a name two
    clusters share gets the cluster's number."""
    bags = [words(t) for t in texts]
    overall = Counter(w for b in bags for w in b)
    n = len(bags)
    names = []
    for c in range(k):
        members = [b for b, lab in zip(bags, labels) if lab == c]
        inside = Counter(w for b in members for w in b)
        score = {w: m / len(members) - overall[w] / n for w, m in inside.items() if m >= 2}
        top = sorted(score, key=lambda w: (-score[w], w))[:NAME_WORDS]
        names.append("/".join(top) if top else f"cluster {c}")
    seen = Counter(names)
    return [f"{name} ({c})" if seen[name] > 1 else name for c, name in enumerate(names)]


def default_clusters(n_items: int) -> int:
    return int(min(64, max(8, round((n_items / 2) ** 0.5))))


def categorize(data_dir: Path, cache_dir: Path, k: int | None, seed: int) -> tuple[pa.Table, dict]:
    """(the catalog with a category column, a summary). A large catalog's texts are encoded by a Ray Data job
    (ray_train/text_embed.py)."""
    from sklearn.cluster import KMeans

    from ray_train.text_embed import ensure_text_embeddings

    manifest = load_manifest(data_dir)
    items = pq.read_table(split_files(data_dir, "items")).to_pylist()
    matrix, info = ensure_text_embeddings(data_dir, cache_dir, manifest["vocab"]["num_items"])
    text = lambda r: item_text(r["title"], r["description"], None, r["brand"])  # noqa: E731
    with_text = [r for r in items if text(r) and np.abs(matrix[r["item_idx"]]).sum() > 0]
    if len(with_text) < 2:
        raise ValueError(f"{data_dir}: {len(with_text)} items have a title or description; categories need text")
    k = min(k or default_clusters(len(with_text)), len(with_text))
    emb = matrix[[r["item_idx"] for r in with_text]]
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(emb)
    names = cluster_names([text(r) for r in with_text], labels, k)
    category = {r["item_id"]: names[lab] for r, lab in zip(with_text, labels)}
    table = pa.table({
        "item_id": [r["item_id"] for r in items], "category": [category.get(r["item_id"]) for r in items],
        "brand": [r["brand"] for r in items], "price": pa.array([r["price"] for r in items], pa.float64()),
        "title": [r["title"] for r in items], "description": [r["description"] for r in items]})
    sizes = Counter(names[lab] for lab in labels)
    return table, {"items": len(items), "items_with_text": len(with_text), "clusters": k, "encoder": info,
                   "largest": sizes.most_common(5)}


def run(args: argparse.Namespace) -> int:
    data_dir = local_data_dir(resolve_data_dir(args.data))  # a version on shared storage: read through a local copy
    cache = Path(args.text_cache) if args.text_cache else data_dir.parent.parent / "text_cache"
    t0 = time.time()
    table, info = categorize(data_dir, cache, args.clusters, args.seed)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    out.with_suffix(".json").write_text(json.dumps(info | {"seconds": round(time.time() - t0, 1)}, indent=2))
    print(f"categories: {info['clusters']} categories for {info['items_with_text']:,} of {info['items']:,} items "
          f"(largest: {', '.join(f'{n} ({c})' for n, c in info['largest'][:3])}) -> {out}; "
          f"next: interest etl ... --items {out}")
    return 0
