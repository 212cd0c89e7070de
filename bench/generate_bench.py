"""Times ``interest generate`` at scale and prints events/s and peak RSS (a quick check, not a test).

    .venv/bin/python bench/generate_bench.py                      # 10M events, 200k users, 50k items
    .venv/bin/python bench/generate_bench.py --events 1000000 --users 20000 --out /tmp/synthetic

The budget is 10M events in <= 2 minutes on 2 cores with memory bounded by one chunk of users.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from interest.synthetic import generate  # noqa: E402
from interest_core.memory import peak_rss_mb  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate, e.g. --events 1000000")
    parser.add_argument("--users", type=int, default=200_000, help="users, e.g. --users 20000")
    parser.add_argument("--items", type=int, default=50_000, help="items, e.g. --items 5000")
    parser.add_argument("--out", help="keep the data set here (default: a temporary directory, deleted), "
                                      "e.g. --out /tmp/synthetic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = generate(args.out or tmp, users=args.users, items=args.items, events=args.events)
        seconds = time.perf_counter() - began
    n = summary["counts"]["events"]
    peak_mib = peak_rss_mb()
    print(f"{n:,} events ({summary['counts']['users']:,} users, {summary['counts']['items']:,} items) in "
          f"{seconds:.1f}s = {n / seconds:,.0f} events/s; peak RSS {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
