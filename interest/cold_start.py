"""Cold start in the evaluation: the cold segments beside every baseline, the content-kNN baseline's inputs and the
ablation table across runs of different item representations.

metrics.json["cold_start"] = {"protocol": "full", "cold_items_fraction", "cold_items" / "cold_users": {"users",
"scorers": {"model", "popularity", "recent_popularity", "random", "content_knn" (runs with text), ...}}}, each
scorer's full-ranking metrics on that segment of the test split. metrics.json["ablation"] (`interest evaluate
--compare RUN ...`) = {"data", "variants": {representation: {"run", "all", "cold_items", "cold_users"}}}.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from interest_core.item_features import text_matrix

COLD_SEGMENTS = ("cold_items", "cold_users")


def run_text_embeddings(run: dict, data_dir: Path, num_items: int) -> np.ndarray | None:
    """The item text embeddings a content run was trained with (its cache), for the content-kNN baseline; None for
    a run without text."""
    text = (run.get("content") or {}).get("text")
    if not text or not Path(text["cache_dir"]).is_dir():
        return None
    return text_matrix(data_dir, text["cache_dir"], num_items)[0]


def cold_start_section(model_segments: dict, baseline_segments: dict[str, dict], manifest: dict) -> dict:
    """model_segments: {segment: full-protocol metrics} of the model; baseline_segments: {name: the same}."""
    out: dict = {"protocol": "full",
                 "cold_items_fraction": manifest["split"].get("cold_items", {}).get("fraction", 0.0)}
    for seg in COLD_SEGMENTS:
        scorers = {"model": model_segments.get(seg, {})} | {n: s.get(seg, {}) for n, s in baseline_segments.items()}
        out[seg] = {"users": scorers["model"].get("n_users", 0), "scorers": scorers}
    return out


def representation(run: dict) -> str:
    """A run's item representation, the ablation's row name: "ID only", "ID + category + ... + text",
    "ID + graph (2 hops)", "ID + user features", ..."""
    model = run.get("config", {}).get("model", {})
    parts = list((run.get("content") or {}).get("item_features") or model.get("item_features") or [])
    if model.get("graph_hops"):
        parts.append(f"graph ({model['graph_hops']} hop{'s' if model['graph_hops'] > 1 else ''})")
    if model.get("user_features"):
        parts.append("user features")
    return "ID only" if not parts else "ID + " + " + ".join(parts)


def ablation(run_dir: Path, run: dict, metrics: dict, compare: list[str | Path]) -> dict:
    """This run and every --compare run (evaluated on the same data) side by side."""
    rows = {representation(run): _row(run_dir, metrics)}
    for other in compare:
        other = Path(other)
        o_run = json.loads((other / "run.json").read_text())
        if Path(o_run["data_dir"]).resolve() != Path(run["data_dir"]).resolve():
            raise ValueError(f"--compare {other}: trained on {o_run['data_dir']}, not on this run's data "
                             f"{run['data_dir']}; an ablation compares runs on the same data")
        path = other / "metrics.json"
        if not path.exists():
            raise ValueError(f"--compare {other}: no metrics.json; run `interest evaluate --run {other}` first")
        name = representation(o_run)
        if name in rows:
            name = f"{name} ({other.name})"
        rows[name] = _row(other, json.loads(path.read_text()))
    return {"data": str(run["data_dir"]), "protocol": "full", "variants": rows}


def _row(run_dir: Path, metrics: dict) -> dict:
    cs = metrics.get("cold_start") or {}
    return {"run": str(run_dir), "all": metrics["test"]["full"],
            **{seg: (cs.get(seg) or {}).get("scorers", {}).get("model", {}) for seg in COLD_SEGMENTS}}
