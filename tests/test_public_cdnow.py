"""CDNOW (from the lifetimes wheel) converted by bench/public_data.py into a generic-format CSV for the ETL."""
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from public_data import CDNOW_BUCKETS, CDNOW_HEADER, cdnow, cdnow_master  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return cdnow(tmp_path_factory.mktemp("public"))


@pytest.fixture(scope="module")
def master():
    return pd.read_csv(cdnow_master(), sep=r"\s+", dtype=str)


def _read(path):
    return pd.read_csv(path, dtype={"user_id": str, "item_id": str, "event_type": str})


def test_cdnow_csv_is_one_buy_per_customer_day(converted, master):
    assert converted.read_text().splitlines()[0] == CDNOW_HEADER
    assert [p.name for p in converted.parent.iterdir()] == ["cdnow.csv"]  # the .part file was renamed away
    df = _read(converted)
    assert len(master) == 69_659
    assert df.user_id.nunique() == master.customer_id.nunique() == 23_570
    assert set(df.user_id) == set(master.customer_id)  # ids as written, leading zeros kept
    customer_days = master.drop_duplicates(["customer_id", "date"])
    assert len(df) == len(customer_days) == 67_591
    assert not df.duplicated(["user_id", "ts"]).any()
    assert (df.event_type == "buy").all()
    assert (df.ts % 86_400 == 12 * 3600).all()  # noon UTC
    dates = pd.to_datetime(df.ts, unit="s", utc=True).dt.strftime("%Y%m%d")
    assert set(zip(df.user_id, dates)) == set(zip(customer_days.customer_id, customer_days.date))
    assert set(df.item_id) <= set(CDNOW_BUCKETS)
    assert df.quantity.sum() == master.number_of_cds.astype(int).sum() == 167_881
    assert df.price.sum() == pytest.approx(master.dollar_value.astype(float).sum(), abs=0.01)


def test_cdnow_buckets_follow_the_day_quantity(converted):
    df = _read(converted)
    edges = {"q1": (1, 1), "q2": (2, 2), "q3": (3, 3), "q4-5": (4, 5), "q6-9": (6, 9), "q10+": (10, 10**9)}
    for bucket, (lo, hi) in edges.items():
        q = df.quantity[df.item_id == bucket]
        assert len(q) and q.between(lo, hi).all(), bucket


def test_cdnow_is_reused_and_deterministic(converted, tmp_path):
    before = converted.stat().st_mtime_ns
    assert cdnow(converted.parent.parent) == converted and converted.stat().st_mtime_ns == before
    assert cdnow(tmp_path).read_bytes() == converted.read_bytes()


@pytest.mark.slow
def test_cdnow_head_passes_ingest_and_validate(spark, converted, tmp_path):
    from interest_core.config import DataConfig
    from spark_jobs import ingest, validate

    head = tmp_path / "cdnow.csv"
    head.write_text("".join(converted.read_text().splitlines(keepends=True)[:501]))  # header + 500 rows
    raw = ingest.read_events(spark, str(head), "generic")
    checked = validate.with_reason(raw, validate.rules_from_config(DataConfig()))
    assert checked.count() == 500
    assert checked.where("reason IS NOT NULL").groupBy("reason").count().collect() == []
    valid = validate.valid_events(checked)
    first = valid.orderBy("src_row").first()
    assert (first.user_id, first.item_id, first.event_type, first.ts, first.quantity, first.price) == \
        ("00001", "q1", "buy", 852_120_000, 1.0, 11.77)
