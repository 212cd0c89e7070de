"""`interest recommend --model DIR --history FILE`: top-K items for ad-hoc histories from an exported model.

DIR is the model/ directory `interest export` writes (interest/model_files.py); scoring runs in ONNX Runtime, with
no torch (unless the export fell back to TorchScript), Ray or Spark. FILE (.csv, .jsonl / .ndjson / .json with one
object a line, or .parquet) holds one event a row:
  user_id     the caller's key of a history, echoed back as given (CSV: as text)
  item_id     the catalog's item id (items.parquet item_id); an id the model does not know counts as OOV
  event_type  one of the model's event types (meta.json vocab.event_types, e.g. view)
  ts          unix seconds or an ISO 8601 time (naive = UTC)
A user's events are sorted by ts (ties keep the file's order) and the last max_len are scored. Output: one JSON line
per user, in order of first appearance: {"user_id": ..., "items": [top-K item ids], "scores": [their scores]}.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from interest.model_files import Event, OnnxRecommender, parse_ts

COLUMNS = ("user_id", "item_id", "event_type", "ts")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The rows of FILE as dicts of COLUMNS; ValueError naming the missing columns and what the file needs."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such history file")
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows: list[Any] = list(reader)
            names = list(reader.fieldnames or [])
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {n}: not a JSON object ({exc.msg}); write one event per "
                                     "line, e.g. {\"user_id\": \"u1\", \"item_id\": \"sku1\", \"event_type\": "
                                     "\"view\", \"ts\": 1700000000}") from None
        names = sorted({k for r in rows if isinstance(r, dict) for k in r})
    elif suffix == ".parquet":
        table = pq.read_table(path)
        names, rows = table.column_names, table.to_pylist()
    else:
        raise ValueError(f"{path}: unknown history format {suffix!r}; use .csv, .jsonl or .parquet")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the history needs columns "
                         f"{', '.join(COLUMNS)} (one event a row)")
    return rows


def group_histories(rows: list[dict[str, Any]], recommender: OnnxRecommender,
                    path: Path) -> tuple[list[Any], list[list[Event]]]:
    """(user keys in order of first appearance, their events in file order; the recommender sorts them by ts).
    Every row is checked first: an error names the row (1 = the first event, a CSV's header not counted) and the
    fix."""
    histories: dict[Any, list[Event]] = {}
    for n, row in enumerate(rows, 1):
        where = f"{path}, row {n}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: not an object with {', '.join(COLUMNS)}")
        empty = [c for c in COLUMNS if row.get(c) is None or str(row[c]).strip() == ""]
        if empty:
            raise ValueError(f"{where}: empty {', '.join(empty)}; every row needs {', '.join(COLUMNS)}")
        try:
            ts = parse_ts(row["ts"])
            recommender.event_type_id(str(row["event_type"]))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        histories.setdefault(row["user_id"], []).append((str(row["item_id"]), str(row["event_type"]), ts))
    if not histories:
        raise ValueError(f"{path}: no events")
    return list(histories), list(histories.values())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="exported model directory, e.g. --model exports/r1/model")
    p.add_argument("--history", required=True,
                   help="events with columns user_id, item_id, event_type, ts (.csv, .jsonl or .parquet), "
                        "e.g. --history histories.csv")
    p.add_argument("--top-k", type=int, default=10, help="recommendations per user, e.g. --top-k 20")
    p.add_argument("--exclude-seen", action="store_true", help="never recommend an item of the user's history")
    p.add_argument("--output", default=None,
                   help="JSON Lines file to write (default: stdout), e.g. --output recs.jsonl")


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: must be >= 1")
    recommender = OnnxRecommender(args.model)
    path = Path(args.history)
    users, histories = group_histories(read_history(path), recommender, path)
    recs = recommender.recommend(histories, top_k=args.top_k, exclude_seen=args.exclude_seen)
    lines = [json.dumps({"user_id": u, "items": items, "scores": scores}) for u, (items, scores) in zip(users, recs)]
    text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
