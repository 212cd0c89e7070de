"""Every kind of bad input row, in every input format, reaches quarantine with its reason (never a silent drop).

The README's reliability section quotes KINDS_TRIED: the bad-input kinds each format is tried with here.
"""
import argparse
import hashlib
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest_core.config import DataConfig, load_config
from spark_jobs import ingest, validate

NOW = 1_900_000_000
GOOD = dict(user="u1", item="i1", event="view", ts="1700000000", quantity="1", price="2.5")
FIELD_CASES = {
    "missing_user": {"user": ""}, "missing_item": {"item": ""}, "missing_ts": {"ts": ""},
    "unparseable_ts": {"ts": "not-a-time"}, "ts_out_of_range": {"ts": "10"},
    "ts_in_future": {"ts": str(NOW + 10 * 86400)}, "unknown_event_type": {"event": "teleport"},
    "id_too_long": {"item": "i" * 9},
    "negative_quantity": {"quantity": "-1"}, "negative_price": {"price": "-3.5"},
    "unparseable_number": {"price": "cheap"},
}
NUMBERS = ("negative_quantity", "negative_price", "unparseable_number")


def _csv_line(fields: list[str], sep: str = ",") -> bytes:
    return sep.join(fields).encode() + b"\n"


# format -> (file name, header bytes, row -> line bytes, field kinds the format can carry, raw-line cases)
def _taobao(r):
    return _csv_line([r["user"], r["item"], "3", "pv" if r["event"] == "view" else r["event"], r["ts"]])


def _retailrocket(r):
    return _csv_line([r["ts"], r["user"], r["event"], r["item"], ""])


def _recbole(r):
    return _csv_line([r["user"], r["item"], r["ts"]], "\t")


def _generic_csv(r):
    return _csv_line([r["user"], r["item"], r["event"], r["ts"], r["quantity"], r["price"]])


def _generic_json(r):
    return json.dumps({"user_id": r["user"], "item_id": r["item"], "event_type": r["event"], "ts": r["ts"],
                       "quantity": r["quantity"], "price": r["price"]}).encode() + b"\n"


NO_NUMBERS = [k for k in FIELD_CASES if k not in NUMBERS]
FORMATS = {
    "taobao": ("UserBehavior.csv", b"", _taobao, NO_NUMBERS,
               {"wrong_column_count": b"u1,i1,3\n", "invalid_utf8": b"u\xff1,i1,3,pv,1700000000\n"}),
    "retailrocket": ("events.csv", b"timestamp,visitorid,event,itemid,transactionid\n", _retailrocket, NO_NUMBERS,
                     {"wrong_column_count": b"1700000000,u1,view\n", "invalid_utf8": b"1700000000,u\xff,view,i1,\n"}),
    "recbole": ("x.inter", b"user_id:token\titem_id:token\ttimestamp:float\n", _recbole,
                [k for k in NO_NUMBERS if k != "unknown_event_type"],  # rating data: no event type column
                {"wrong_column_count": b"u1\ti1\n", "invalid_utf8": b"u\xff\ti1\t1700000000\n"}),
    "generic-csv": ("events.csv", b"user_id,item_id,event_type,ts,quantity,price\n", _generic_csv, list(FIELD_CASES),
                    {"wrong_column_count": b"u1,i1,view,1700000000,1,2.5,extra\n",
                     "invalid_utf8": b"u\xff,i1,view,1700000000,1,2.5\n"}),
    "generic-jsonl": ("events.jsonl", b"", _generic_json, list(FIELD_CASES),
                      {"unparseable_line": b'{"user_id": "u1", "item_id": \n',
                       "invalid_utf8": b'{"user_id": "u\xff", "item_id": "i1", "ts": "1700000000"}\n'}),
    "generic-parquet": ("events.parquet", None, None, list(FIELD_CASES), {}),
}
KINDS_TRIED = {f: len(spec[3]) + len(spec[4]) for f, spec in FORMATS.items()}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_bad_input_kind_reaches_quarantine_with_its_reason(spark, tmp_path, fmt):
    name, header, line, kinds, raw_cases = FORMATS[fmt]
    rows = [("ok", GOOD)] + [(k, GOOD | FIELD_CASES[k]) for k in kinds]
    path = tmp_path / name
    if line is None:  # Parquet: typed columns, no text line; empty fields are nulls
        cols = {"user_id": "user", "item_id": "item", "event_type": "event", "ts": "ts", "quantity": "quantity",
                "price": "price"}
        pq.write_table(pa.table({c: [r[f] or None for _, r in rows] for c, f in cols.items()}), path)
        expected = [None if k == "ok" else k for k, _ in rows]
    else:
        path.write_bytes(header + b"".join(line(r) for _, r in rows) + b"".join(raw_cases.values()))
        expected = [None if k == "ok" else k for k, _ in rows] + list(raw_cases)
    raw = ingest.read_events(spark, str(path), fmt.split("-")[0], {}, None)
    rules = validate.rules_from_config(DataConfig(max_id_length=8), now=NOW)
    got = validate.with_reason(raw, rules).orderBy("src_file", "src_row").select("reason").collect()
    codes = [r.reason and r.reason.split(":")[0] for r in got]  # a reason's detail follows its code
    assert codes == expected  # every row kept, in input order, each with its own reason
    assert KINDS_TRIED[fmt] == len(set(expected) - {None})


# Rows with the wrong number of fields, per delimited format: (file name, header, good row (user, item, ts) -> line,
# field count, {row: fields found}). Shifted: the values one column off, the user id in another column (RetailRocket:
# the timestamp missing; the others: a stray leading field); short; long (a separator inside quotes is no field).
# Raw user ids are qz + digits.
MISCOUNTED = {
    "taobao": ("UserBehavior.csv", b"", lambda u, i, t: f"{u},{i},3,pv,{t}", 5,
               {",qz91,i1,3,pv,1700000000": 6, "qz92,i1,3": 3, "qz93,i1,3,pv,1700000000,x": 6}),
    "retailrocket": ("events.csv", b"timestamp,visitorid,event,itemid,transactionid\n",
                     lambda u, i, t: f"{t}000,{u},view,{i},", 5,
                     {"qz91,view,i1,": 4, "1700000000000,qz92": 2, "1700000000000,qz93,view,i1,,x": 6}),
    "recbole": ("x.inter", b"user_id:token\titem_id:token\ttimestamp:float\n", lambda u, i, t: f"{u}\t{i}\t{t}", 3,
                {"\tqz91\ti1\t1700000000": 4, "qz92": 1, "qz93\ti1\t1700000000\tx": 4}),
    "generic": ("events.csv", b"user_id,item_id,event_type,ts\n", lambda u, i, t: f"{u},{i},view,{t}", 4,
                {",qz91,i1,view,1700000000": 5, "qz92,i1": 2, 'qz93,"i,1",view,1700000000,x': 5}),
}
RAW_ID = re.compile(r"qz\d+")


def test_a_row_with_the_wrong_field_count_keeps_no_field_and_no_raw_id_reaches_any_output(spark, tmp_path, capfd):
    """One ETL per delimited format: each miscounted row is quarantined with its reason, position and hash only,
    and no raw user id (of a bad row or a good one) is in the quarantine, any other output file or the console."""
    from spark_jobs.etl import run_etl

    good = [(u, i, 1_700_000_000 + 60 * k) for k, (u, i) in enumerate(
        [("qz1", "i10"), ("qz1", "i11"), ("qz1", "i12"), ("qz1", "i13"), ("qz2", "i10"), ("qz2", "i13"),
         ("qz2", "i14")])]
    cfg = load_config("tiny-cpu", ["data.max_quarantine_fraction=0.5"])
    for fmt, (name, header, line, n_fields, bad) in MISCOUNTED.items():
        src = tmp_path / fmt / name
        src.parent.mkdir()
        src.write_bytes(header + "".join(line(*r) + "\n" for r in good).encode() + "".join(
            b + "\n" for b in bad).encode())
        assert len(RAW_ID.findall(src.read_text())) == len(good) + len(bad)  # the pattern finds every raw id
        args = argparse.Namespace(input=str(src), format=fmt, output=str(tmp_path / fmt / "out"), items=None,
                                  column_map=None, ts_unit="auto", sep=None, hmac_key_file=None,
                                  allow_insecure_demo_key=True)
        m = run_etl(spark, args, cfg)
        for f in sorted((tmp_path / fmt / "out").rglob("*")):
            if f.is_file():
                text = json.dumps(pq.read_table(f).to_pylist(), default=str) if f.suffix == ".parquet" \
                    else f.read_bytes().decode("utf-8", errors="replace")  # .crc and the like: binary
                assert not RAW_ID.search(text), f"{f}: {RAW_ID.search(text).group(0)}"
        console = capfd.readouterr()
        assert not RAW_ID.search(console.out + console.err), f"{fmt} console: {console}"
        assert m["quarantine"]["by_reason"] == {"wrong_column_count": len(bad)}, fmt
        q = pq.read_table(tmp_path / fmt / "out" / m["version"] / "quarantine").to_pylist()
        assert sorted((r["reason"], r["raw_sha256"]) for r in q) == sorted(
            (f"wrong_column_count: expected {n_fields} fields, found {found}", hashlib.sha256(b.encode()).hexdigest())
            for b, found in bad.items()), fmt
        assert all(r["source"].endswith(name) and r["position"] is not None for r in q), fmt
        assert [{k: v for k, v in r.items() if v is not None} for r in q] == [
            {k: r[k] for k in ("reason", "source", "position", "raw_sha256")} for r in q], fmt  # no field kept
