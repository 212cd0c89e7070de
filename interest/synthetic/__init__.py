"""Deterministic synthetic e-commerce events with planted structure (``interest generate``).

The data set is built so that each model in the project has something real to find, and the planted
truth is written next to the events:

* items live in a two-level category tree; popularity is Zipf-like inside each sub-category;
* each user has 2-3 latent interest sub-categories (Dirichlet weights) and a sequential habit
  (re-visit the previous item or one next to it), so a next-item model beats global popularity;
* a fraction of the users migrate to disjoint interests at a random time of their active span;
* activity is a sequence of sessions with per-user (gamma) rates and a churn hazard after each session
  that falls with the purchases so far; the end of the window censors everyone else;
* a session is a funnel (every event is a view; view -> cart -> buy, view -> fav) and sessions start
  more often in the evening (UTC);
* cold users (<= 3 events) and cold items (available only in the last days, with boosted popularity).

Output in ``out_dir``: ``events/part-NNNNN.parquet`` (one file per chunk of users, rows sorted by
user_id, ts), ``items.parquet``, ``ground_truth.parquet`` and ``generator.json`` (parameters, planted
rates, calibration and actual counts). Memory is bounded by one chunk of users, and all randomness
comes from numpy Generators seeded with (seed, stream, chunk), so equal arguments give equal bytes.

Modules: ``rates`` (the planted ``Rates`` and fixed constants), ``simulate`` (catalogue, sessions,
interests and events as numpy arrays, and the calibration of the event count) and ``write`` (Arrow
schemas and tables, the Parquet files and generator.json).
"""
from __future__ import annotations

import argparse
import inspect
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .rates import EVENT_TYPES, STREAM_CATALOG, STREAM_EVENTS, Rates
from .catalog import _build_catalog
from .simulate import _calibrate, _session_rng, _simulate_chunk, _simulate_sessions, _TimeWarp
from .write import _Output, _summary

__all__ = ["Rates", "add_arguments", "generate", "run"]


def _start_seconds(start: str) -> int:
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        raise ValueError(f"start={start!r} is not an ISO date/time, e.g. 2024-01-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _check_sizes(users: int, items: int, days: float, events: int, chunk_users: int) -> None:
    if users < 1:
        raise ValueError(f"users={users}: need at least 1 user, e.g. --users 2000")
    if items < 20:
        raise ValueError(f"items={items}: need at least 20 items for a category tree, e.g. --items 1000")
    if days < 1:
        raise ValueError(f"days={days}: the window must be at least 1 day, e.g. --days 60")
    if events < users:
        raise ValueError(f"events={events} < users={users}: every user has at least one event")
    if not 1 <= chunk_users < 1 << 27:
        raise ValueError(f"chunk_users={chunk_users} must be in [1, 2**27)")


def generate(out_dir: str | Path, *, users: int = 2000, items: int = 1000, days: int = 60, events: int = 100_000,
             seed: int = 0, start: str = "2024-01-01", chunk_users: int = 20_000,
             rates: Rates | None = None) -> dict:
    """Writes the data set; returns a summary dict (also written to out_dir/generator.json).

    ``events`` is met approximately (session rates and lengths are calibrated on a pilot); ``users``
    and ``items`` exactly. ``rates`` overrides the planted rates (default: ``Rates()``).
    """
    r = rates or Rates()
    r.validate()
    _check_sizes(users, items, days, events, chunk_users)
    t0 = _start_seconds(start)
    output = _Output(out_dir, users, t0)  # creates out_dir/events/ without the parts of an earlier run

    warp = _TimeWarp(r.hour_weights)
    catalog = _build_catalog(np.random.default_rng([seed, STREAM_CATALOG]), items, days, r)
    output.write_items(catalog)

    chunks = [(lo, min(chunk_users, users - lo)) for lo in range(0, users, chunk_users)]
    calibration = _calibrate(seed, chunks, events / users, r, warp, days)
    by_type = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    item_seen = np.zeros(items, dtype=bool)
    users_total = {"cold": 0, "migrated": 0, "churned": 0}
    n_sessions = 0
    with output:
        for chunk, (lo, n) in enumerate(chunks):
            sessions = _simulate_sessions(_session_rng(seed, chunk), n, calibration["scale"], r, warp, days)
            simulated = _simulate_chunk(np.random.default_rng([seed, STREAM_EVENTS, chunk]), sessions, catalog, r)
            output.write_chunk(chunk, lo, simulated)
            by_type += [sessions.views.sum(), sessions.carts.sum(), sessions.favs.sum(), sessions.buys.sum()]
            item_seen[simulated.item] = True
            n_sessions += len(sessions.user)
            for key, flags in (("cold", simulated.is_cold), ("migrated", simulated.interests.migrated),
                               ("churned", simulated.churned)):
                users_total[key] += int(flags.sum())

    params = dict(users=users, items=items, days=days, events=events, seed=seed, start=start, chunk_users=chunk_users)
    summary = _summary(params=params, rates=r, calibration=calibration, catalog=catalog,
                       by_type=by_type, item_seen=item_seen, users_total=users_total, n_sessions=n_sessions,
                       n_files=len(chunks))
    return output.write_summary(summary)


# ---------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (events/, items.parquet, ground_truth.parquet, generator.json), "
                             "e.g. --out data/synthetic")
    for name, what, example in (("users", "users, each with at least one event", 200_000),
                                ("items", "items in the catalogue", 50_000),
                                ("days", "days in the event window", 90),
                                ("events", "events to aim for (met within ~15%%)", 10_000_000),
                                ("seed", "random seed; equal arguments give byte-identical files", 1)):
        parser.add_argument(f"--{name}", type=int, default=defaults[name], metavar="N",
                            help=f"{what} (default {defaults[name]}), e.g. --{name} {example}")
    parser.add_argument("--start", default=defaults["start"], metavar="DATE",
                        help=f"first day of the window, UTC (default {defaults['start']}), e.g. --start 2023-06-01")


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    summary = generate(args.out, users=args.users, items=args.items, days=args.days, events=args.events,
                       seed=args.seed, start=args.start)
    counts = summary["counts"]
    print(f"generated {counts['events']:,} events (target {args.events:,}) for {counts['users']:,} users and "
          f"{counts['items']:,} items in {counts['event_files']} file(s) -> {args.out} "
          f"[{time.perf_counter() - began:.1f}s]")
    return 0
