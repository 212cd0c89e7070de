"""Every kind of bad input row, in every input format, reaches quarantine with its reason (never a silent drop).

The README's reliability section quotes KINDS_TRIED: the bad-input kinds each format is tried with here.
"""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest_core.config import DataConfig
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
    assert [r.reason for r in got] == expected  # every row kept, in input order, each with its own reason
    assert KINDS_TRIED[fmt] == len(set(expected) - {None})
