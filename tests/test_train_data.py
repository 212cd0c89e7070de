"""The train split as the trainer hands it to Ray Train (ray_train/data.py): every read path gives the same rows."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from interest_core.config import load_config
from interest_core.contract import TRAIN_COLUMNS, load_manifest, split_files
from ray_train import data

pytestmark = pytest.mark.usefixtures("ray_session")


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(zip(table["user_id"].to_pylist(), table["window"].to_pylist(), table["first_target"].to_pylist(),
                      [tuple(x) for x in table["items"].to_pylist()]))


@pytest.mark.parametrize("driver_mb, materialize_mb", [(64, 512), (0, 512), (0, 0)],
                         ids=["driver-read", "ray-data-read-materialized", "ray-data-streamed"])
def test_every_read_path_gives_every_train_row_and_the_padding(shards, monkeypatch, driver_mb, materialize_mb):
    """Small shards are read by the driver, larger ones by Ray Data's tasks (materialized up to
    train.materialize_max_mb, streamed beyond): the same rows either way, padded to a multiple of the world size
    with copies of the first window that carry no target (first_target = its length)."""
    monkeypatch.setattr(data, "DRIVER_READ_MAX_MB", driver_mb)
    cfg = load_config("tiny-cpu", [f"train.materialize_max_mb={materialize_mb}"])
    n = load_manifest(shards)["rows"]["train"]
    world = next(w for w in (5, 7, 11) if n % w)  # a world size that needs padding
    files = split_files(shards, "train")
    reference = _rows(pa.concat_tables(pq.read_table(f, columns=list(TRAIN_COLUMNS)) for f in files))
    padded = _rows(pa.concat_tables(ray.get(data.train_dataset(shards, cfg, n, world).to_arrow_refs())))
    assert len(reference) == n and len(padded) == n + (-n % world) and -n % world > 0
    extra = list(padded)
    for row in reference:
        extra.remove(row)
    assert all(first == len(items) for _, _, first, items in extra), extra
