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

--users FILE (same formats; a model trained with model.user_features): user_id and any of age, gender, occupation,
region, one row a user. A user listed there without any event is recommended to from those features alone (a new
user), after the users with events, in the file's order.
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
from interest_core.user_features import USER_FIELDS

COLUMNS = ("user_id", "item_id", "event_type", "ts")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The rows of FILE as dicts of COLUMNS; ValueError naming the missing columns and what the file needs."""
    names, rows = _read_rows(path, "history")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the history needs columns "
                         f"{', '.join(COLUMNS)} (one event a row)")
    return rows


def read_users(path: Path) -> dict[Any, dict[str, Any]]:
    """--users FILE -> {user_id: {feature: value}}; ValueError naming the row or column and the fix."""
    names, rows = _read_rows(path, "users")
    if "user_id" not in names:
        raise ValueError(f"{path}: no user_id column; the users file needs user_id and any of {', '.join(USER_FIELDS)}")
    extra = [c for c in names if c != "user_id" and c not in USER_FIELDS]
    if extra:
        raise ValueError(f"{path}: unknown column(s) {', '.join(extra)}; a model reads {', '.join(USER_FIELDS)}")
    out: dict[Any, dict[str, Any]] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or row.get("user_id") is None or str(row["user_id"]).strip() == "":
            raise ValueError(f"{path}, row {n}: no user_id")
        if row["user_id"] in out:
            raise ValueError(f"{path}, row {n}: user {row['user_id']!r} is listed twice")
        out[row["user_id"]] = {k: v for k, v in row.items() if k != "user_id"}
    return out


def _read_rows(path: Path, what: str) -> tuple[list[str], list[Any]]:
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what} file")
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
        raise ValueError(f"{path}: unknown {what} format {suffix!r}; use .csv, .jsonl or .parquet")
    return names, rows


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
    p.add_argument("--users", default=None,
                   help="user side features (user_id, age, gender, occupation, region; .csv, .jsonl or .parquet) for "
                        "a model trained with model.user_features; users without events get recommendations too, "
                        "e.g. --users new_users.csv")
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
    features = None
    if args.users:
        if not recommender.reads_user_features:
            raise ValueError(f"--users {args.users}: the model at {args.model} was trained without user side "
                             "features (model.user_features); leave --users out")
        known = read_users(Path(args.users))
        new = [u for u in known if u not in set(users)]
        users, histories = users + new, histories + [[] for _ in new]
        features = [known.get(u) for u in users]
    recs = recommender.recommend(histories, top_k=args.top_k, exclude_seen=args.exclude_seen, users=features)
    lines = [json.dumps({"user_id": u, "items": items, "scores": scores}) for u, (items, scores) in zip(users, recs)]
    text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
