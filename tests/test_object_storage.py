"""Shared storage end to end: an ETL output published on a local S3-compatible server (moto's server mode), then
`interest train` (1 epoch) -> `evaluate` -> `report` -> `export` through the CLI with the data, the run and the export all on
s3://; a newer version still being written (no `_SUCCESS`, `_CURRENT` on the old one) is never read, and a pointer
at an unfinished version is refused with the fix."""
import json
import socket

import pytest

from interest.cli import main
from interest_core import storage
from interest_core.data_versions import CURRENT, point_to

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
BUCKET = "interest-shared"
UNFINISHED = "v-29991231T235959Z-ffffff"  # sorts after every real version: the newest, half written


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A moto S3 server on a free loopback port, the environment pointing there, one empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1", storage.CACHE_ENV: str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}"
    finally:
        server.stop()


def _json(uri: str) -> dict:
    return json.loads(storage.read_text(uri))


def test_train_evaluate_export_on_s3_never_read_a_half_written_version(shards, s3, capsys):
    data = f"{s3}/data"
    storage.upload(shards, f"{data}/{shards.name}", exclude=("_refs",))  # the published version, _SUCCESS included
    point_to(data, f"{data}/{shards.name}")
    # A newer ETL still writing: every file but _SUCCESS, and a manifest no reader could use.
    storage.upload(shards, f"{data}/{UNFINISHED}", exclude=("_SUCCESS", "manifest.json", "_refs"))
    storage.write_text(f"{data}/{UNFINISHED}/manifest.json", '{"schema_version": -1}')

    run, export = f"{s3}/runs/r1", f"{s3}/exports/r1"
    assert main(["train", "--data", data, "--output", run, "--config", "tiny-cpu", "--epochs", "1",
                 "--set", "train.micro_batch_size=128", "--set", "model.decay_refit_epochs=0"]) == 0
    info = _json(f"{run}/run.json")
    assert info["data_dir"] == f"{data}/{shards.name}"  # the current version, not the newer unfinished one
    assert info["best_checkpoint"].startswith(f"{run}/checkpoint_")
    assert storage.exists(f"{info['best_checkpoint']}/model.pt")  # Ray Train wrote its checkpoints to S3
    assert storage.exists(f"{run}/model/model.pt") and storage.exists(f"{run}/history.json")
    (ref,) = storage.children(f"{data}/{shards.name}/_refs")  # a later ETL keeps the version the run uses
    assert _json(f"{data}/{shards.name}/_refs/{ref}")["run_dir"] == run

    assert main(["evaluate", "--run", run]) == 0
    metrics = _json(f"{run}/metrics.json")
    assert metrics["test"]["full"]["n_users"] > 0 and storage.exists(f"{run}/negatives/test.parquet")
    assert main(["report", "--run", run]) == 0 and storage.exists(f"{run}/report.html")
    assert main(["export", "--run", run, "--output", export]) == 0
    exported = _json(f"{export}/export.json")
    assert exported == _json(f"{run}/export.json") and storage.exists(f"{export}/model")
    assert not storage.children(f"{data}/{UNFINISHED}/_refs")  # nothing read the unfinished version
    out = capsys.readouterr().out
    assert f"uploaded to {run}" in out and f"uploaded to {export}" in out

    # The pointer at a version without _SUCCESS (e.g. written by hand): refused before any work, with the fix.
    storage.write_text(f"{data}/{CURRENT}", json.dumps({"version": UNFINISHED}))
    assert main(["train", "--data", data, "--output", f"{s3}/runs/r2", "--config", "tiny-cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{data}/{UNFINISHED}: no _SUCCESS marker" in err and f"--output {data}" in err
    assert not storage.exists(f"{s3}/runs/r2")
