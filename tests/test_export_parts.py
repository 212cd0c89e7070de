"""The batch export's parts without Ray: segment fitting and summary, shard pairing, profile columns."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest.export.batch import file_pairs, merge_join, sorted_batches
from interest.export.segments import fit_segments, summarize


def _blobs(k=4, n=60, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, d))
    return np.concatenate([c + rng.normal(0, 0.5, (n, d)) for c in centers]), np.repeat(np.arange(k), n)


def test_auto_k_finds_the_planted_clusters_by_silhouette():
    x, truth = _blobs()
    km, record = fit_segments(x, "auto", 8, seed=0)
    assert record["k"] == 4 and record["chosen_by"] == "silhouette"
    assert max(record["silhouette"], key=lambda k: record["silhouette"][k] or -1) == "4"
    # each planted cluster lands in one segment
    labels = km.predict(x)
    assert all(len(set(labels[truth == c].tolist())) == 1 for c in range(4))


def test_configured_k_is_used_and_tiny_samples_fit_nothing():
    x, _ = _blobs()
    km, record = fit_segments(x, 6, 12, seed=0)
    assert km.n_clusters == 6 and record["chosen_by"] == "config"
    km, record = fit_segments(x[:2], "auto", 12, seed=0)
    assert km is None and record["k"] is None


def test_segment_summary_streams_the_profiles(tmp_path):
    day = 86400
    rows = {
        "segment": pa.array([0, 0, 1, None], pa.int32()),
        "n_events": pa.array([10, 20, 5, 7], pa.int32()),
        "last_event_ts": pa.array([100 * day, 98 * day, 90 * day, 0], pa.int64()),
        "buy_share": [0.1, 0.3, None, 0.0],
        "p_buy_next": [0.2, 0.4, 0.1, 0.0],
        "churn_risk": [None, None, 0.9, 0.1],
        "interest_tags": [["A/x", "B"], ["A/x"], ["C"], ["D"]],
        "interest_weights": [[0.6, 0.4], [1.0], [1.0], [1.0]],
        "top_item_ids": [["i1", "i2"], ["i2", "i3"], ["i9"], ["i8"]],
    }
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table(rows).slice(0, 2), tmp_path / "p" / "a.parquet")
    pq.write_table(pa.table(rows).slice(2), tmp_path / "p" / "b.parquet")
    t = summarize(tmp_path / "p", np.zeros((2, 3)), data_last_ts=100 * day).to_pylist()
    s0, s1 = t
    assert s0["users"] == 2 and s1["users"] == 1 and s0["share"] == pytest.approx(2 / 3)
    assert s0["mean_events"] == 15 and s0["mean_days_since_last"] == pytest.approx(1.0)
    assert s0["purchase_rate"] == pytest.approx(0.2) and s1["purchase_rate"] is None
    assert s0["mean_churn_risk"] is None and s1["mean_churn_risk"] == pytest.approx(0.9)
    assert s0["top_categories"] == ["A/x", "B"] and s0["top_category_shares"] == pytest.approx([0.8, 0.2])
    assert s0["representative_items"][0] == "i2" and len(s0["centroid"]) == 3


def test_test_decay_and_drift_shards_pair_by_partition(tmp_path):
    for split, parts in (("test", [0, 1, 3]), ("decay_test", [1, 0]), ("drift_test", [3, 1])):
        (tmp_path / split).mkdir()
        for p in parts:
            (tmp_path / split / f"part-{p:05d}-abc.c000.snappy.parquet").write_text("")
    pairs = file_pairs(tmp_path)
    name = lambda f: f.rsplit("/", 1)[-1][:10] if f else ""  # noqa: E731
    assert [(name(p["test"]), name(p["decay"]), name(p["drift"])) for p in pairs] == [
        ("part-00000", "part-00000", ""), ("part-00001", "part-00001", "part-00001"),
        ("part-00003", "", "part-00003")]


def _ids(n, rng):
    return sorted({f"u{x:05d}" for x in rng.integers(0, 10 * n, n)})


@pytest.mark.parametrize("seed", range(5))
def test_merge_join_gives_every_test_batch_exactly_its_users_side_rows(tmp_path, seed):
    rng = np.random.default_rng(seed)
    test_ids = _ids(int(rng.integers(1, 300)), rng)
    pq.write_table(pa.table({"user_id": test_ids, "v": range(len(test_ids))}), tmp_path / "t.parquet",
                   row_group_size=int(rng.integers(1, 50)))
    side_ids = []
    for name in ("decay", "drift"):  # two sides, each with other users and some of the test users
        side_ids.append(sorted(set(_ids(int(rng.integers(0, 300)), rng)) |
                               set(rng.choice(test_ids, len(test_ids) // 2))))
        pq.write_table(pa.table({"user_id": side_ids[-1]}), tmp_path / f"{name}.parquet",
                       row_group_size=int(rng.integers(1, 50)))
    got_test, got = [], [{}, {}]
    joined = merge_join(sorted_batches(str(tmp_path / "t.parquet"), ["user_id", "v"], int(rng.integers(1, 40))),
                        *(sorted_batches(str(tmp_path / f"{name}.parquet"), ["user_id"], int(rng.integers(1, 40)))
                          for name in ("decay", "drift")), None)
    for test, *sides, none in joined:
        assert none is None
        ids = test.column("user_id").to_pylist()
        got_test += ids
        for side, seen in zip(sides, got):
            for u in (side.column("user_id").to_pylist() if side is not None else []):
                assert u in ids and u not in seen  # only this batch's users, each once
                seen[u] = True
    assert got_test == test_ids
    for ids, seen in zip(side_ids, got):
        assert sorted(seen) == sorted(set(test_ids) & set(ids))


def test_sorted_batches_accepts_one_row_batches_and_rejects_unsorted_files(tmp_path):
    pq.write_table(pa.table({"user_id": ["a", "b", "c"]}), tmp_path / "ok.parquet")
    assert [b.num_rows for b in sorted_batches(str(tmp_path / "ok.parquet"), ["user_id"], 1)] == [1, 1, 1]
    pq.write_table(pa.table({"user_id": ["a", "c", "b"]}), tmp_path / "bad.parquet")
    for size in (1, 3):
        with pytest.raises(ValueError, match="not sorted by user_id"):
            list(sorted_batches(str(tmp_path / "bad.parquet"), ["user_id"], size))


@pytest.mark.parametrize("seed", range(5))
def test_merge_sorted_parts_equals_one_global_sort(tmp_path, seed):
    from interest.export.merge import merge_sorted

    rng = np.random.default_rng(seed)
    keys = [("activity_at_risk", "descending"), ("user_id", "ascending")]
    parts, whole = [], []
    for p in range(int(rng.integers(1, 6))):
        n = int(rng.integers(0, 40))
        t = pa.table({"user_id": [f"u{p}-{i:03d}" for i in range(n)],
                      "activity_at_risk": rng.integers(0, 6, n).astype(np.float64),  # many ties
                      "payload": [[int(x)] * 2 for x in rng.integers(0, 9, n)]}).sort_by(keys)
        pq.write_table(t, tmp_path / f"part-{p}.parquet", row_group_size=7)
        parts.append(tmp_path / f"part-{p}.parquet")
        whole.append(t)
    got = list(merge_sorted(parts, keys, batch_size=int(rng.integers(1, 9))))
    merged = pa.concat_tables(got) if got else whole[0].slice(0, 0)
    assert merged.equals(pa.concat_tables(whole).sort_by(keys))


def test_merge_sorted_refuses_an_unsorted_part(tmp_path):
    from interest.export.merge import merge_sorted

    keys = [("activity_at_risk", "descending"), ("user_id", "ascending")]
    pq.write_table(pa.table({"user_id": ["a", "b"], "activity_at_risk": [1.0, 2.0]}), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match="p.parquet: rows are not sorted"):
        list(merge_sorted([tmp_path / "p.parquet"], keys))


def test_read_head_takes_the_first_rows_across_files_in_order(tmp_path):
    from interest_core.batches import read_head

    files = []
    for i, n in enumerate([5, 0, 7]):
        pq.write_table(pa.table({"user_id": [f"f{i}-{j}" for j in range(n)], "x": list(range(n))},
                                schema=pa.schema([("user_id", pa.string()), ("x", pa.int64())])),
                       tmp_path / f"p{i}.parquet", row_group_size=2)
        files.append(str(tmp_path / f"p{i}.parquet"))
    everything = pa.concat_tables([pq.read_table(f) for f in files])
    for k in (0, 1, 4, 5, 6, 12, 50):
        got = read_head(files, ["user_id"], k)
        assert got.column("user_id").to_pylist() == everything.column("user_id").to_pylist()[:k]
        assert got.schema.names == ["user_id"]
    assert read_head(files, ["x"]).num_rows == 12


def test_peak_rss_is_the_process_own_not_its_parent_at_fork():
    # ru_maxrss survives fork + exec: a child of a 600 MB parent would report 600 MB; VmHWM is the child's own.
    import subprocess
    import sys

    ballast = bytearray(600 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident in this process
    code = "from interest_core.memory import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent.parent).stdout)
    assert 1 < child < 300, child
    del ballast
