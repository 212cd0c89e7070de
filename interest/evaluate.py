"""`interest evaluate --run RUN`: the best checkpoint and the baselines on the same split and protocol ->
RUN/metrics.json (stable keys, DESIGN.md).

Baselines (all from training data only, scored like the model):
  popularity            items by their count in the training part of every history;
  recent_popularity     items by their count in training events of the last eval.recent_popularity_days days
                        before the last training event;
  cooccurrence          sum of the Spark item graph's edge weights from the user's last 3 items
                        (weights 1, 1/2, 1/3 by recency), popularity breaking ties;
  repeat_last_category  items of the last history item's category first, each group by popularity.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from interest.config import config_from_dict
from interest.evaluation import PROTOCOLS, new_accumulators, results, row_segments, score_rows
from interest.metrics import draw_negatives
from ray_train.data import collate_eval, load_manifest, read_eval_split, split_files
from ray_train.models.config import ModelArgs
from ray_train.models.model import InterestModel


def load_model(run_dir: Path) -> tuple[InterestModel, dict]:
    model_dir = run_dir / "model"
    if not (model_dir / "model.pt").exists():
        raise FileNotFoundError(f"{model_dir}/model.pt missing: train first (`interest train --output {run_dir}`)")
    meta = json.loads((model_dir / "meta.json").read_text())
    model = InterestModel(ModelArgs(**meta["model_args"]))
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), meta


class Baselines:
    """Scorers over the whole catalog built from the training shards, the item table and the item graph."""

    def __init__(self, data_dir: Path, num_items: int, recent_days: float, split_info: dict):
        items = pq.read_table(data_dir / "items", columns=["item_idx", "train_count", "category_idx"]).to_pydict()
        idx = np.asarray(items["item_idx"], dtype=np.int64)
        self.pop = np.zeros(num_items, dtype=np.float64)
        self.pop[idx] = items["train_count"]
        self.category = np.zeros(num_items, dtype=np.int64)
        self.category[idx] = items["category_idx"]
        self.recent = self._recent_counts(data_dir, num_items, recent_days,
                                          split_info["max_len"] + 1 - split_info["stride"])
        g = pq.read_table(data_dir / "graph").to_pydict()
        # The graph as CSR arrays: row i's neighbours are cols[crow[i]:crow[i + 1]].
        src = np.asarray(g["src"], dtype=np.int64)
        order = np.argsort(src, kind="stable")
        self.crow = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_items))])
        self.cols = torch.from_numpy(np.asarray(g["dst"], dtype=np.int64)[order])
        self.vals = torch.from_numpy(np.asarray(g["weight"], dtype=np.float64)[order])
        self.num_items = num_items
        # A tiny popularity term breaks ties without changing any ordering the main score makes.
        self.tiebreak = torch.from_numpy(self.pop / (self.pop.max() + 1) * 1e-6)

    @staticmethod
    def _recent_counts(data_dir: Path, num_items: int, days: float, overlap: int) -> np.ndarray:
        t = pq.ParquetDataset(split_files(data_dir, "train")).read(columns=["items", "ts", "window"])
        items = pc.list_flatten(t["items"]).to_numpy()
        ts = pc.list_flatten(t["ts"]).to_numpy()
        # Window k > 0 shares its last `overlap` events with window k - 1 (max_len + 1 - stride); count each once.
        lens = pc.list_value_length(t["items"]).to_numpy().astype(np.int64)
        keep = np.where(t["window"].to_numpy() == 0, lens, np.maximum(lens - overlap, 0))
        pos = np.arange(len(items)) - np.repeat(np.cumsum(lens) - lens, lens)
        unique = pos < np.repeat(keep, lens)
        counts = np.zeros(num_items, dtype=np.float64)
        if len(ts):
            recent = unique & (ts >= ts.max() - days * 86400)
            np.add.at(counts, items[recent], 1.0)
        return counts

    def scorers(self) -> dict:
        pop = torch.from_numpy(self.pop)
        recent = torch.from_numpy(self.recent)
        return {
            "popularity": lambda b, part, sl: pop.expand(b["items"].shape[0], -1).clone(),
            "recent_popularity": lambda b, part, sl: (recent + self.tiebreak).expand(b["items"].shape[0], -1).clone(),
            "cooccurrence": self._cooccurrence,
            "repeat_last_category": self._repeat_category,
        }

    def _cooccurrence(self, b, part, sl) -> torch.Tensor:
        items = b["items"]  # (B, L), most recent last
        scores = self.tiebreak.expand(items.shape[0], -1).clone()
        for back, w in ((1, 1.0), (2, 0.5), (3, 1 / 3)):
            col = items[:, -back]
            scores += w * self._graph_rows(col) * (col > 1).unsqueeze(1)
        return scores

    def _graph_rows(self, col: torch.Tensor) -> torch.Tensor:
        """Dense (B, N) rows of the graph for the given item ids."""
        out = torch.zeros(len(col), self.num_items, dtype=torch.float64)
        for r, i in enumerate(col.tolist()):
            a, b = self.crow[i], self.crow[i + 1]
            out[r, self.cols[a:b]] = self.vals[a:b]
        return out

    def _repeat_category(self, b, part, sl) -> torch.Tensor:
        last_cat = torch.from_numpy(self.category)[b["items"][:, -1]]  # (B,)
        same = (torch.from_numpy(self.category).unsqueeze(0) == last_cat.unsqueeze(1)) & (last_cat.unsqueeze(1) > 0)
        pop = torch.from_numpy(self.pop / (self.pop.max() + 1))
        return same.double() + pop.unsqueeze(0)


def store_negatives(path: Path, rows: dict, num_items: int, seed: int, n: int) -> None:
    """Writes the sampled100 negatives (user_id, target_item, negatives): the draw depends only on the seed and
    the user's pseudonym, so these are exactly the ones every scoring pass uses, and papers' numbers compare."""
    import pyarrow as pa

    negs = draw_negatives(num_items, [np.asarray(s, dtype=np.int64) for s in rows["seen_items"]],
                          np.asarray(rows["target_item"]), n, seed, rows["user_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"user_id": rows["user_id"], "target_item": rows["target_item"],
                             "negatives": [list(map(int, r)) for r in negs]}), path)


def _event_type_metrics(model: InterestModel, rows: dict, max_len: int, event_types: list[str]) -> dict | None:
    if "event_type" not in model.heads:
        return None
    probs, targets = [], []
    with torch.no_grad():
        for s in range(0, len(rows["user_id"]), 512):
            part = {k: v[s:s + 512] for k, v in rows.items()}
            h = model.encode(collate_eval(part, max_len))[:, -1]
            probs.append(torch.softmax(model.heads["event_type"](h).float(), -1))
            targets.append(torch.tensor(part["target_event_type"]))
    p, y = torch.cat(probs), torch.cat(targets)
    acc = float((p[:, 1:].argmax(-1) + 1 == y).double().mean())
    aucs = {}
    for t in range(1, len(event_types)):
        pos = y == t
        if 0 < int(pos.sum()) < len(y):
            aucs[event_types[t]] = _auc(p[:, t].numpy(), pos.numpy())
    return {"accuracy": acc, "auc": aucs, "n_users": int(len(y)),
            "majority_class_accuracy": float(torch.bincount(y).max()) / max(1, len(y))}


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted as one half."""
    order = np.argsort(score, kind="mergesort")
    s, l = score[order], label[order].astype(bool)
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = l.sum(), (~l).sum()
    return float((ranks[l].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None) -> dict:
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    data_dir = Path(data_dir or run["data_dir"])
    manifest = load_manifest(data_dir)
    cfg = config_from_dict(run["config"])
    model, meta = load_model(run_dir)
    max_len, num_items = meta["model_args"]["max_len"], meta["model_args"]["num_items"]
    event_types = manifest["vocab"]["event_types"]
    common = dict(max_len=max_len, num_items=num_items, batch_size=cfg.eval.batch_size,
                  negatives_seed=cfg.eval.negatives_seed, n_negatives=cfg.eval.sampled_negatives)
    model_scorer = lambda b, part, sl: model.score_all(b)  # noqa: E731
    out: dict = {"protocol": {
        "split": manifest["split"]["kind"], "max_len": max_len, "k": list(cfg.eval.ks),
        "negatives_seed": cfg.eval.negatives_seed, "sampled_negatives": cfg.eval.sampled_negatives,
        "ties": "pessimistic: equal scores rank above the target", "selection": cfg.eval.select_protocol,
        "cold_user_max_events": cfg.data.cold_user_max_events, "model_checkpoint_epoch": meta["epoch"] - 1}}
    segments_acc = None
    for split in ("valid", "test"):
        rows = read_eval_split(data_dir, split)
        store_negatives(run_dir / "negatives" / f"{split}.parquet", rows, num_items, cfg.eval.negatives_seed,
                        cfg.eval.sampled_negatives)
        accs = new_accumulators(cfg.eval.ks)
        segs = (lambda i, rows=rows: row_segments(rows, i, cfg.data.cold_user_max_events, event_types)) \
            if split == "test" else None
        score_rows(model_scorer, rows, accs, segments=segs, **common)
        res = results(accs)
        out[split] = {p: res[p].get("all", {}) for p in PROTOCOLS}
        if split == "test":
            segments_acc, test_rows = res, rows
    out["segments"] = {}
    for seg in sorted({g for p in PROTOCOLS for g in segments_acc[p] if g != "all"}):
        out["segments"][seg] = {p: segments_acc[p].get(seg, {}) for p in PROTOCOLS}
    base = Baselines(data_dir, num_items, cfg.eval.recent_popularity_days, manifest["split"])
    out["baselines"] = {}
    for name, scorer in base.scorers().items():
        accs = new_accumulators(cfg.eval.ks)
        score_rows(scorer, test_rows, accs, **common)
        out["baselines"][name] = {p: r.get("all", {}) for p, r in results(accs).items()}
    out["decay"] = None  # the decay head arrives with the seeds' capabilities (DESIGN.md item 4)
    out["event_type"] = _event_type_metrics(model, test_rows, max_len, event_types)
    out["throughput"] = {"train_seq_per_s": run.get("train_seq_per_s"),
                         "ingest_rows_per_s": manifest.get("ingest_rows_per_s")}
    (run_dir / "metrics.json").write_text(json.dumps(_clean(out), indent=2))
    return out


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory written by `interest train`, e.g. --run runs/r1")
    p.add_argument("--data", default=None, help="data directory (default: the one the run trained on)")


def run(args: argparse.Namespace) -> int:
    out = evaluate_run(args.run, args.data)
    t, b = out["test"]["full"], out["baselines"]["popularity"]["full"]
    print(f"evaluate: test ndcg@10 {t['ndcg@10']:.4f} hr@10 {t['hr@10']:.4f} (popularity hr@10 {b['hr@10']:.4f}) "
          f"-> {Path(args.run) / 'metrics.json'}")
    return 0
