"""User side features: one id rule in Spark and Python, the users-file rules, the model's side vector, serving new
users (no events) from an exported model."""
from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from interest_core.config import load_config
from interest_core.modelargs import ModelArgs, count_params, model_args
from interest_core.user_features import USER_FIELDS, age_group, feature_id, region_value
from ray_train.models import InterestModel

B = 97  # buckets: small, so a wrong modulus would show


def test_age_groups_and_ids():
    assert [age_group(a) for a in (None, 0, 17, 18, 24.9, 25, 49, 55, 56, 120, 121)] == \
        [None, None, "<18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+", None]
    assert feature_id("gender", None, B) == feature_id("gender", "  ", B) == 0
    assert feature_id("gender", "F", B) == feature_id("gender", " f ", B) != feature_id("region", "f", B)
    assert all(1 <= feature_id("occupation", str(i), B) <= B for i in range(200))


def test_spark_ids_are_the_python_ids_and_unusable_values_are_named(spark):
    from spark_jobs import users

    rows = [("a", "17", "F", "student", "10001"), ("b", "abc", "M", None, "9"), ("c", "130", "", "writer", None),
            ("d", "56", "M", "other", " 55455 "), ("e", "40", "F", "other", " United Kingdom "),
            ("f", "41", "M", "other", "United Arab Emirates")]
    df = spark.createDataFrame(rows, "user_id string, age string, gender string, occupation string, region string")
    got = {r["user_id"]: (r["user_features"], r["unusable"]) for r in users.user_feature_ids(df, B).collect()}

    def expect(age, gender, occupation, region):
        a = None
        try:
            a = age_group(float(age))
        except ValueError:
            pass
        region = region_value(region) if region else region
        return [feature_id(n, v, B) for n, v in zip(USER_FIELDS, (a, gender, occupation, region))]

    for uid, *values in rows:
        assert got[uid][0] == expect(*values), uid
    assert got["a"][1] == [] and got["b"][1] == ["age"] and got["c"][1] == ["age"]
    assert got["b"][0][2] == 0 and got["c"][0][1] == 0  # missing occupation, empty gender: unknown
    # a postal code is its first three characters, a country its whole name (two "Uni..." countries stay apart)
    assert region_value(" 55455 ") == "554" and region_value("United Kingdom") == "United Kingdom"
    assert got["e"][0][3] != got["f"][0][3]


def test_users_file_rules_quarantine_duplicates_and_map(spark, tmp_path):
    from spark_jobs import pseudonymize, users

    path = tmp_path / "people.csv"
    path.write_text("uid,years,sex,zip\nu1,30,F,10001\n,40,M,20002\nu2,22,M,30003\nu1,41,F,10001\n"
                    "u9,50,F,40004\n")
    key = b"k" * 16
    events = pseudonymize.pseudonymize_users(spark.createDataFrame([("u1",), ("u2",), ("u3",)], "user_id string"),
                                             key)
    feats, quarantine, counts = users.build(
        spark, str(path), users.parse_users_map("user_id=uid,age=years,gender=sex,region=zip"), B, key)
    assert counts == {"rows": 5, "rows_without_user_id": 1, "duplicate_rows": 1, "users": 3,
                      "unusable_values": {}, "features": list(USER_FIELDS), "buckets": B}
    assert users.users_with_events(users.attach(events, feats)) == 2
    q = quarantine.collect()
    assert [r["reason"] for r in q] == ["users_file_no_user_id"] and len(q[0]["raw_sha256"]) == 64
    assert "40" not in json.dumps([r.asDict() for r in q])  # the row's text is not kept
    by_user = {r["user_id"]: r["user_features"] for r in feats.collect()}
    assert "u1" not in by_user  # pseudonyms only
    u1 = by_user[hmac.new(key, b"u1", hashlib.sha256).hexdigest()]
    assert u1 == [feature_id("age", "35-44", B), feature_id("gender", "F", B), 0, feature_id("region", "100", B)]
    attached = {r["user_id"]: r["user_features"] for r in users.attach(events, feats).collect()}
    assert sorted(map(sum, attached.values()))[0] == 0  # u3 has no users row: unknown everywhere
    assert all(len(v) == len(USER_FIELDS) for v in attached.values())
    with pytest.raises(ValueError, match="--users-map"):
        users.parse_users_map("height=h")
    with pytest.raises(ValueError, match="no user id column"):
        users.read_users(spark, str(path))


def test_a_recbole_user_file_has_its_zip_code_as_region(spark, tmp_path):
    from spark_jobs import users

    path = tmp_path / "ml.user"
    path.write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                    "1\t24\tM\ttechnician\t85711\n")
    (row,) = users.user_feature_ids(users.one_row_per_user(users.read_users(spark, str(path))), B).collect()
    assert row["user_features"] == [feature_id("age", "18-24", B), feature_id("gender", "M", B),
                                    feature_id("occupation", "technician", B), feature_id("region", "857", B)]


def _args(**kw) -> ModelArgs:
    return ModelArgs(**{**dict(num_items=40, num_event_types=3, max_len=6, dim=16, n_layers=1, n_heads=2,
                               dropout=0.0, user_feature_buckets=B), **kw})


def _batch(n=3):
    torch.manual_seed(1)
    items = torch.randint(2, 40, (n, 6))
    items[0] = 0  # a user without events
    return {"items": items, "event_types": (items > 0).long(), "ts": torch.arange(6).repeat(n, 1) * 60 + 1,
            "user_features": torch.randint(0, B + 1, (n, len(USER_FIELDS)))}


def test_the_side_vector_reaches_the_state_and_is_a_new_user_alone():
    model = InterestModel(_args()).eval()
    b = _batch()
    with torch.no_grad():
        u = model.user_embedding(b)
        side = model.user_side(b["user_features"])
        torch.testing.assert_close(u[0], side[0])
        other = dict(b, user_features=torch.zeros_like(b["user_features"]))
        assert not torch.allclose(model.user_embedding(other)[1:], u[1:])
        assert torch.count_nonzero(model.user_embedding(other)[0]) == 0
    b["targets"] = torch.where(b["items"] > 0, torch.randint(2, 40, b["items"].shape), 0)
    b["target_event_types"] = (b["targets"] > 0).long()
    model.train()
    loss, _ = model.loss(b)
    loss.backward()
    assert model.user_side.weight.grad.abs().sum() > 0
    assert count_params(model.args) == model.num_params()
    assert count_params(model.args, non_embedding=True) == model.num_params(non_embedding=True)


def test_user_features_need_data_with_a_users_file():
    cfg = load_config("tiny-cpu", ["model.user_features=true"])
    with pytest.raises(ValueError, match="--users"):
        model_args(cfg, 40, 3, 6)
    assert model_args(cfg, 40, 3, 6, user_feature_buckets=B).user_feature_buckets == B
    with pytest.raises(ValueError, match="user_features"):
        load_config("tiny-cpu", ["model.user_features=true", "model.arch=vae"])


def test_an_exported_model_recommends_to_a_user_without_events(tmp_path):
    from interest.model_files import OnnxRecommender, write_model_files

    model = InterestModel(_args()).eval()
    items = pa.table({"item_idx": list(range(2, 40)), "item_id": [f"i{i}" for i in range(2, 40)]})
    info = write_model_files(model, {"vocab": {"event_types": ["<pad>", "view", "buy"]}}, items, tmp_path)
    assert info["inputs"] == ["items", "event_types", "ts", "user_features"]
    rec = OnnxRecommender(tmp_path)
    user = {"age": 30, "gender": "F", "region": "10001"}
    (new, known) = rec.recommend([[], [("i5", "view", 100)]], top_k=5, users=[user, None])
    assert len(new[0]) == 5 and len(known[0]) == 5
    with torch.no_grad():
        ids = torch.tensor([[feature_id("age", "25-34", B), feature_id("gender", "F", B), 0,
                             feature_id("region", "100", B)]])
        ref = model.scores(model.user_side(ids))[0].numpy()
    assert new[0] == [f"i{i}" for i in np.argsort(-ref, kind="stable")[:5]]
    with pytest.raises(ValueError, match="unknown user feature"):
        rec.recommend([[]], users=[{"height": 2}])
    plain = tmp_path / "plain"
    write_model_files(InterestModel(_args(user_feature_buckets=0)).eval(),
                      {"vocab": {"event_types": ["<pad>", "view", "buy"]}}, items, plain)
    with pytest.raises(ValueError, match="no user side features"):
        OnnxRecommender(plain).recommend([[]])
    assert pq.read_table(tmp_path / "items.parquet").num_rows == 38


def test_held_out_users_train_nothing_and_keep_their_first_events(spark):
    """The new-user protocol: held-out users lose every training window and their validation and next-action rows;
    their test history is their first 1..3 events, the target the event after them; other users are unchanged."""
    from pyspark.sql import functions as F

    from spark_jobs import sequences

    rows = [(f"u{i}", [(j, 100 + j) for j in range(1, 2 + i % 7)]) for i in range(60)]
    seqs = spark.createDataFrame(rows, "user_id string, ev array<struct<item_idx:int, ts:long>>")
    split = sequences.split_sequences(seqs, "leave-one-out")
    before = {r["user_id"]: r.asDict() for r in split.collect()}
    after = {r["user_id"]: r.asDict() for r in sequences.hold_out_users(split, 0.3, 3).collect()}
    held = {u for (u,) in split.where(sequences.held_out_user(F.col("user_id"), 0.3) & F.col("test_target").isNotNull())
            .select("user_id").collect()}  # a user with one event has no test row to hold out
    assert 8 <= len(held) <= 30
    lengths = set()
    for u, r in after.items():
        if u not in held:
            assert r == before[u]
            continue
        n = len(before[u]["test_hist"]) + 1
        assert r["train_ev"] is r["valid_hist"] is r["valid_target"] is r["action_ev"] is None
        h = len(r["test_hist"])
        lengths.add(h)
        assert 1 <= h <= min(3, n - 1)
        assert [e["item_idx"] for e in r["test_hist"]] == list(range(1, h + 1)) and r["test_target"]["item_idx"] == h + 1
    assert lengths == {1, 2, 3}
