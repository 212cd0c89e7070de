"""interest_core.storage: locations as local paths or URIs, and the versioned publish rule on top of it (no server
needed: the local filesystem; tests/test_object_storage.py runs the same against an S3-compatible server)."""
import json
import re

import pytest

from interest_core import storage
from interest_core.data_versions import (CURRENT, DataDirError, local_data_dir, point_to, readable_data_dir,
                                         resolve_data_dir, versions)


@pytest.mark.parametrize("uri", ["ftp://host/data", "http://host/x", "s4://bucket/x"])
def test_an_unknown_scheme_is_refused_naming_the_uri_and_the_schemes(uri):
    with pytest.raises(storage.StorageError, match=rf"{uri}: scheme .* not supported.*s3://, gs://, hdfs://"):
        storage.filesystem_and_path(uri)


def test_hdfs_without_a_client_is_refused_in_one_line_naming_what_it_needs(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    with pytest.raises(storage.StorageError, match=r"^hdfs://namenode:8020: cannot open .*JAVA_HOME, HADOOP_HOME") as e:
        storage.filesystem_and_path("hdfs://namenode:8020/data")
    assert "\n" not in str(e.value)


def test_an_s3_uri_without_a_bucket_is_refused():
    with pytest.raises(storage.StorageError, match="no bucket"):
        storage.filesystem_and_path("s3:///data")


def test_plain_paths_and_file_uris_are_the_same_local_place(tmp_path):
    (tmp_path / "a").mkdir()
    fs1, p1 = storage.filesystem_and_path(tmp_path / "a")
    fs2, p2 = storage.filesystem_and_path(f"file://{tmp_path}/a")
    assert p1 == p2 == str(tmp_path / "a") and fs1.type_name == fs2.type_name == "local"
    assert not storage.is_remote(f"file://{tmp_path}") and storage.is_remote("s3://bucket/x")
    assert storage.join("s3://bucket/x/", "v-1", "_SUCCESS") == "s3://bucket/x/v-1/_SUCCESS"


def test_s3_takes_the_endpoint_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    fs, path = storage.filesystem_and_path("s3://bucket/data/v-1")
    assert path == "bucket/data/v-1" and fs.type_name == "s3"
    assert "127.0.0.1:9" in repr(fs.__reduce__())  # the endpoint travels with the filesystem (to Ray workers)


def test_small_objects_replace_whole(tmp_path):
    storage.write_text(tmp_path / "x.json", "1")
    storage.write_text(f"file://{tmp_path}/x.json", "2")
    assert storage.read_text(tmp_path / "x.json") == "2" and storage.children(tmp_path) == ["x.json"]


def test_a_working_copy_skips_checkpoints_and_uploads_what_changed_markers_last(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    run = tmp_path / "run"
    (run / "checkpoint_000001").mkdir(parents=True)
    (run / "checkpoint_000001" / "model.pt").write_text("w")
    (run / "model").mkdir()
    (run / "model" / "meta.json").write_text("{}")
    copy = storage.WorkingCopy(f"file://{run}", skip=("checkpoint_",))
    local = copy.open()
    assert local != run and sorted(p.name for p in local.iterdir()) == ["model"]
    (local / "metrics.json").write_text("{}")
    (local / "negatives").mkdir()
    (local / "negatives" / "test.parquet").write_text("n")
    assert copy.save(last=("metrics.json",)) == ["negatives/test.parquet", "metrics.json"]
    assert (run / "metrics.json").exists() and (run / "negatives" / "test.parquet").read_text() == "n"
    assert copy.save() == []  # nothing changed since


def test_versions_resolve_through_the_pointer_as_paths_or_file_uris(tmp_path):
    out = tmp_path / "data"
    (out / "v-1").mkdir(parents=True)
    (out / "v-1" / "_SUCCESS").write_text("")
    (out / "v-2").mkdir()  # half written: never named by the pointer
    point_to(out, out / "v-1")
    assert resolve_data_dir(out) == out / "v-1" and [storage.basename(v) for v in versions(out)] == ["v-1", "v-2"]
    assert json.loads((out / CURRENT).read_text())["version"] == "v-1"
    assert readable_data_dir(f"file://{out}") == local_data_dir(out / "v-1") == out / "v-1"


def test_an_unfinished_version_is_refused_naming_the_etl_output_to_write_again(tmp_path):
    """A version without _SUCCESS: the fix is the ETL on its parent (the versioned output), not on the version; an
    unversioned directory's fix is the directory itself."""
    from interest_core.contract import load_manifest

    out = tmp_path / "data"
    for d in (out / "v-2", tmp_path / "flat"):
        d.mkdir(parents=True)
        (d / "manifest.json").write_text("{}")
    with pytest.raises(DataDirError, match=rf"v-2: no _SUCCESS marker.* names a version it never finished.*"
                                           rf"--output {re.escape(str(out))}` again"):
        load_manifest(out / "v-2")
    with pytest.raises(DataDirError, match=rf"flat: no _SUCCESS marker.*--output {re.escape(str(tmp_path / 'flat'))}`"):
        load_manifest(tmp_path / "flat")


def test_the_etl_publishes_to_a_file_uri_as_to_its_path_and_spark_writes_s3_through_s3a(tmp_path):
    from spark_jobs import publish

    out = f"file://{tmp_path}/out"
    v1 = publish.prepare(out)
    (v1 / "_SUCCESS").write_text("")
    publish.publish(out, v1)
    v2 = publish.prepare(out)  # v1 current; v2 open, its writer (this process) alive
    assert resolve_data_dir(tmp_path / "out") == v1 and v2.is_dir() and (v2 / "_WRITER.json").exists()
    (v2 / "_SUCCESS").write_text("")
    assert publish.publish(out, v2) == [f"removed {v1.name}: not current and no run uses it"]
    assert resolve_data_dir(out) == v2 and not v1.exists() and not (v2 / "_WRITER.json").exists()
    assert publish.spark_path("s3://bucket/data/v-1/train") == "s3a://bucket/data/v-1/train"
    assert str(publish.Target("gs://bucket/data") / "train") == "gs://bucket/data/train"
    assert str(publish.Target(tmp_path) / "train") == str(tmp_path / "train")
