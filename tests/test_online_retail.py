"""`interest etl --format online-retail` on a small file in the UCI Online Retail format (spark_jobs/online_retail.py):
each kind of line, the time zone, the catalog and regions it yields, and the split by basket."""
import argparse
import datetime as dt
import gzip
import json
import re

import pyarrow.parquet as pq
import pytest

from interest_core.config import load_config
from interest_core.user_features import feature_id

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
KINDS = {"HEART T-LIGHT HOLDER": ("WHITE", "RED", "GLASS"), "CERAMIC COFFEE MUG": ("BLUE", "PINK", "STRIPED"),
         "PAPER NAPKINS": ("FLORAL", "PARTY", "CHRISTMAS"), "LUNCH BAG": ("SPOTTY", "SKULL", "SUKI"),
         "WOODEN PHOTO FRAME": ("SMALL", "ANTIQUE")}
TITLES = [(kind, f"{variant} {kind}") for kind, variants in KINDS.items() for variant in variants]
PRODUCTS = {f"{85100 + k}{'AB'[k % 2] if k % 3 == 0 else ''}": (title, 1.25 + k) for k, (_, title) in enumerate(TITLES)}
CODES = sorted(PRODUCTS)
RAW_ID = re.compile(r"(?<![0-9])999[0-9]{2}(?:\.0)?(?![0-9])")  # the fixture's customer ids
# a description with quotes inside, doubled as the file does
QUOTED = ("85999", '"LETTER ""A"" BLING KEY RING"', 'LETTER "A" BLING KEY RING')
# one line of each kind that is not a plain purchase: (line, the reason it is quarantined with)
ODD = [
    (f"537001,{CODES[0]},{PRODUCTS[CODES[0]][0]},3,2011-01-04 10:00:00,1.25,,United Kingdom", "no_customer_id"),
    (f"C537002,{CODES[1]},{PRODUCTS[CODES[1]][0]},-2,2011-01-04 10:05:00,2.25,99901.0,United Kingdom",
     "cancellation"),
    ("537003,POST,POSTAGE,1,2011-01-04 10:10:00,18.00,99902.0,France", "non_product_code"),
    (f"537004,{CODES[2]},{PRODUCTS[CODES[2]][0]},1,2011-13-45 10:10:00,3.25,99903.0,United Kingdom", "unparseable_ts"),
    (f"537005,{CODES[3]},{PRODUCTS[CODES[3]][0]},-4,2011-01-05 10:10:00,4.25,99904.0,United Kingdom",
     "negative_quantity"),
    (f"537006,{CODES[4]},{PRODUCTS[CODES[4]][0]},1,2011-01-05 11:10:00,abc,99905.0,United Kingdom",
     "unparseable_number"),
]


def _purchase_lines() -> list[str]:
    """12 customers, 4 invoices each on different days (2-3 lines of one time per invoice), UK or France; one line
    with an empty description, one with a comma inside quotes."""
    lines, invoice = [], 536000
    for c in range(12):
        customer, country = f"{99910 + c}.0", "France" if c % 4 == 0 else "United Kingdom"
        for v in range(4):
            invoice += 1
            when = dt.datetime(2010, 12, 1, 9) + dt.timedelta(days=20 * v + c, minutes=7 * c)
            for j in range(2 + (c + v) % 2):
                code = CODES[(3 * c + 2 * v + j) % len(CODES)]
                text, price = PRODUCTS[code]
                if (c, v, j) == (1, 1, 0):
                    text = ""
                if (c, v, j) == (2, 2, 1):
                    text = f'"{text}, LARGE"'
                lines.append(f"{invoice},{code},{text},{1 + j},{when:%Y-%m-%d %H:%M:%S},{price},{customer},{country}")
    lines.append(f"536999,{QUOTED[0]},{QUOTED[1]},1,2011-02-01 09:00:00,1.25,99910.0,France")
    return lines


@pytest.fixture(scope="module")
def retail(spark, tmp_path_factory):
    from spark_jobs.etl import run_etl

    root = tmp_path_factory.mktemp("online_retail")
    src = root / "online_retail.csv.gz"
    lines = _purchase_lines()
    with gzip.open(src, "wt") as f:
        f.write("\n".join([HEADER, *lines[:20], *[line for line, _ in ODD], *lines[20:]]) + "\n")
    args = argparse.Namespace(input=str(src), format="online-retail", output=str(root / "out"), items=None,
                              column_map=None, ts_unit="auto", sep=None, hmac_key_file=None,
                              allow_insecure_demo_key=True)
    manifest = run_etl(spark, args, load_config("tiny-cpu"))
    return root, manifest, lines


def test_each_kind_of_line_is_a_purchase_or_quarantined_with_its_reason(retail, capfd):
    """Anonymous, cancelled and service lines are set aside under their own reasons and do not count against the
    quarantine threshold; bad dates, negative quantities outside a cancellation and non-numeric prices are bad rows;
    an empty description is still a purchase. No customer id reaches any output or the console."""
    root, m, lines = retail
    reasons = {reason: 1 for _, reason in ODD}
    q = m["quarantine"]
    assert q["by_reason"] == reasons and q["rows_set_aside"] == 3
    assert q["fraction"] == pytest.approx(3 / (len(lines) + len(ODD)))  # set-aside lines are not counted
    c = m["counts"]
    assert c["rows_in"] == len(lines) + len(ODD) and c["rows_valid"] == len(lines)
    assert c["event_types"]["buy"] == c["rows_used"] and c["users"] == 12
    assert m["split"]["baskets"] is True and m["config"]["data"]["baskets"] is True
    rows = pq.read_table(root / "out" / m["version"] / "quarantine").to_pylist()
    assert sorted(r["reason"] for r in rows) == sorted(reasons)
    for f in sorted((root / "out").rglob("*.parquet")) + sorted((root / "out").rglob("*.json")):
        text = json.dumps(pq.read_table(f).to_pylist(), default=str) if f.suffix == ".parquet" else f.read_text()
        assert not RAW_ID.search(text), f"{f}: {RAW_ID.search(text).group(0)}"
    console = capfd.readouterr()
    assert not RAW_ID.search(console.out + console.err)


def test_invoice_times_are_the_shops_local_time(spark):
    """Winter times are UTC already, summer times (BST) are an hour ahead of UTC; a date that does not parse is
    handed on for validate to quarantine."""
    from pyspark.sql import functions as F

    from spark_jobs.online_retail import utc_seconds

    got = [r[0] for r in spark.createDataFrame(
        [("2010-12-01 08:26:00",), ("2011-06-01 12:00:00",), ("6/1/2011 12:00",), ("2011-13-45 10:10:00",)], "t string")
        .select(utc_seconds(F.col("t"))).collect()]
    utc = lambda *a: str(int(dt.datetime(*a, tzinfo=dt.timezone.utc).timestamp()))  # noqa: E731
    assert got == [utc(2010, 12, 1, 8, 26), utc(2011, 6, 1, 11), utc(2011, 6, 1, 11), "2011-13-45 10:10:00"]


def test_catalog_and_regions_come_from_the_lines(retail):
    """An item's title is its most frequent description (an empty one aside), its price the median unit price;
    each customer's region is their country."""
    root, m, _ = retail
    items = {r["item_id"]: r for r in pq.read_table(root / "out" / m["version"] / "items").to_pylist()}
    for code in (CODES[(3 * 1 + 2 * 1) % len(CODES)], CODES[(3 * 2 + 2 * 2 + 1) % len(CODES)]):
        text, price = PRODUCTS[code]
        assert items[code]["title"] == text and items[code]["price"] == pytest.approx(price), items[code]
    assert items[QUOTED[0]]["title"] == QUOTED[2]
    assert "POST" not in items and all(r["category"] is None for r in items.values())
    test = pq.read_table(root / "out" / m["version"] / "test", columns=["user_features"]).to_pylist()
    regions = {r["user_features"][3] for r in test}
    assert regions == {feature_id("region", "United Kingdom", 10_000), feature_id("region", "France", 10_000)}


def test_no_basket_is_divided_between_a_target_and_its_history(retail):
    """Leave-one-out by invoice: the test target is an item of the user's last invoice, predicted from the earlier
    invoices only; the validation target one of the invoice before."""
    root, m, _ = retail
    for split in ("valid", "test"):
        rows = pq.read_table(root / "out" / m["version"] / split, columns=["ts", "target_ts"]).to_pylist()
        assert len(rows) == 12
        assert all(max(r["ts"]) < r["target_ts"] for r in rows), split
    valid = {r["user_id"]: r for r in pq.read_table(root / "out" / m["version"] / "valid").to_pylist()}
    test = {r["user_id"]: r for r in pq.read_table(root / "out" / m["version"] / "test").to_pylist()}
    train = pq.read_table(root / "out" / m["version"] / "train", columns=["user_id", "ts"]).to_pylist()
    for user, t in test.items():  # the test history ends with the validation invoice; training ends before it
        assert t["ts"][-1] == valid[user]["target_ts"] > valid[user]["ts"][-1]
        assert all(max(r["ts"]) < valid[user]["target_ts"] for r in train if r["user_id"] == user)


def test_categories_from_the_titles_reach_the_etl_as_a_catalog(retail, ray_session, spark, tmp_path):
    """`interest categories` clusters the items' title embeddings, names each cluster by its words, and writes a
    catalog that a second ETL reads with --items: every item then has a category named in product words."""
    from interest import categories
    from interest.cli import parse_command
    from spark_jobs.etl import run_etl

    root, m, _ = retail
    catalog = tmp_path / "catalog.parquet"
    assert categories.run(parse_command("categories", [
        "--data", str(root / "out"), "--output", str(catalog), "--clusters", str(len(KINDS)), "--seed", "0",
        "--text-cache", str(tmp_path / "text_cache")])) == 0
    assert list((tmp_path / "text_cache").glob("part-*.parquet"))  # the embeddings, for the next run to reuse
    got = {r["item_id"]: r["category"] for r in pq.read_table(catalog).to_pylist()}
    kind_of = {code: next(k for k, t in TITLES if t == title) for code, (title, _) in PRODUCTS.items()}
    assert set(got) == {*PRODUCTS, QUOTED[0]} and len(set(got.values())) == len(KINDS)
    from sklearn.metrics import adjusted_rand_score

    codes = sorted(PRODUCTS)
    assert adjusted_rand_score([kind_of[c] for c in codes], [got[c] for c in codes]) >= 0.6, got
    titles = {**{c: t for c, (t, _) in PRODUCTS.items()}, QUOTED[0]: QUOTED[2]}
    for code, name in got.items():  # a name is words of its items' titles
        assert set(name.split(" (")[0].split("/")) <= {w.lower().strip('"') for c in got if got[c] == name
                                                       for w in titles[c].split()}
    args = argparse.Namespace(input=str(root / "online_retail.csv.gz"), format="online-retail",
                              output=str(tmp_path / "out"), items=str(catalog), column_map=None, ts_unit="auto",
                              sep=None, hmac_key_file=None, allow_insecure_demo_key=True)
    m2 = run_etl(spark, args, load_config("tiny-cpu"))
    items = pq.read_table(tmp_path / "out" / m2["version"] / "items").to_pylist()
    assert m2["vocab"]["num_categories"] == len(KINDS) + 1
    assert all(r["category"] == got[r["item_id"]] and r["category_idx"] > 0 for r in items)
    assert all(r["title"] == titles[r["item_id"]] for r in items)  # the catalog's titles stay
