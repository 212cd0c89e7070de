"""Integration: local Ray, 2 workers, tiny preset, DeepSpeed on the CPU accelerator."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interest_core.config import load_config
from interest.synthetic import generate
from ray_train import train
from interest_core.contract import check_same_data, load_manifest
from interest_core.data_versions import DataDirError, resolve_data_dir
from helpers import chatter, plan_env

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
REPO = Path(__file__).resolve().parent.parent


def _train(data, out, *extra):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--output", str(out), "--config", "tiny-cpu",
                              "--set", "train.log_every_steps=2", *extra])
    assert train.run(args) == 0
    return json.loads((out / "run.json").read_text()), json.loads((out / "history.json").read_text())


def test_a_resubmitted_run_resumes_mid_epoch_from_its_latest_complete_checkpoint(shards, tmp_path, capfd):
    """One run stopped early mid-epoch, then resubmitted: a finished run is refused without --force (its model
    stands); with --force it resumes from the latest complete checkpoint (the newest lacks a rank's sealed marker,
    as a crash while writing leaves it), skips the micro-batches that checkpoint's epoch already trained, continues
    its history, its MLflow run and the driver's progress bar, and leaves no staging directory behind."""
    from mlflow.tracking import MlflowClient

    from ray_train import checkpoints

    out, uri = tmp_path / "resume", (tmp_path / "mlruns").as_uri()
    # MLflow 3 refuses its file store unless told (MLFLOW_ALLOW_FILE_STORE, set in conftest.py before the session's
    # Ray instance starts: its workers log); a real deployment gives an http:// or database URI.
    common = ["--set", "train.max_steps_per_epoch=3", "--set", "train.val_every_steps=1",
              "--set", "train.keep_checkpoints=3", "--set", f"train.mlflow_tracking_uri={uri}"]
    staging = set(Path(tempfile.gettempdir()).glob("interest-ckpt-*"))
    # lr ~0: validation never improves after the first one, so patience 1 stops training at step 2 of an epoch of 3
    first_run, first = _train(shards, out, "--epochs", "1", *common, "--set", "train.early_stopping_patience=1",
                              "--set", "train.lr=1e-12")
    assert first_run["stopped_early"] and [h["step"] for h in first] == [1, 2]
    assert set(Path(tempfile.gettempdir()).glob("interest-ckpt-*")) == staging
    model_bytes = (out / "model" / "model.pt").read_bytes()
    with pytest.raises(ValueError, match=r"holds a finished run .* is final\. Use a new --output, or add --force"):
        _train(shards, out, "--epochs", "2", *common)  # refused before Ray starts: the finished run and its model stand
    assert (out / "model" / "model.pt").read_bytes() == model_bytes
    client = MlflowClient(tracking_uri=uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("interest-trainer").experiment_id])
    assert logged.info.run_name == "resume" and logged.info.status == "FINISHED"
    assert logged.data.params["train.lr"] == str(first_run["config"]["train"]["lr"])
    points = client.get_metric_history(logged.info.run_id, "valid_ndcg_at_10")
    assert [p.value for p in points] == pytest.approx([h["valid"]["ndcg@10"] for h in first])

    done = checkpoints.complete_checkpoints(out)
    assert [checkpoints.step_of(p) for p in done] == [1, 2]
    (done[-1] / "COMPLETE.rank1.json").unlink()  # rank 1 died before sealing its files
    assert checkpoints.problem(done[-1]) == "no COMPLETE.rank1.json"
    capfd.readouterr()
    _, second = _train(shards, out, "--force", "--epochs", "2", *common, "--set", "train.early_stopping_patience=10",
                       "--set", "train.progress=bar")
    logs = capfd.readouterr()
    console = logs.out + logs.err
    assert f"checkpoint {done[-1].name} is incomplete (no COMPLETE.rank1.json" in console, console[-3000:]
    assert f"resuming from {done[0].name}" in console and "at step 1," in console
    # the rest of epoch 1 (steps 2, 3: the cursor skips the micro-batch step 1 trained), then epoch 2
    assert [h["step"] for h in second] == [1, 2, 3, 4, 5, 6] and second[0] == first[0]
    # the driver's bar, fed by rank 0 through the board actor: step counter, loss and the validation summary
    assert "loss=" in logs.err and "(epoch 2.00) validation" in logs.err, logs.err[-2000:]
    # the resumed run continues its MLflow run; each step's latest point is the history's (step 2 was logged twice)
    (logged,) = client.search_runs([client.get_experiment_by_name("interest-trainer").experiment_id])
    latest = {p.step: p.value for p in sorted(client.get_metric_history(logged.info.run_id, "valid_ndcg_at_10"),
                                              key=lambda p: p.timestamp)}
    assert latest == pytest.approx({h["step"]: h["valid"]["ndcg@10"] for h in second})
    assert set(Path(tempfile.gettempdir()).glob("interest-ckpt-*")) == staging


@pytest.fixture(scope="module")
def ks_run(ray_session, shards, tmp_path_factory):
    """One finished run under ZeRO-3 (2 epochs of micro-batches of 16, eval.ks=[5, 20], eval.select=ndcg@5) that
    four tests read: its loss curve, its selection, metrics and report; and the refusal to resume it as another
    model, world size, ZeRO stage or data (what a resume compares is the model, the data, the workers and the ZeRO
    stage, never the eval settings)."""
    out = tmp_path_factory.mktemp("ks") / "ks"
    run, history = _train(shards, out, "--zero-stage", "3", "--epochs", "2", "--set", "train.micro_batch_size=16",
                          "--set", "eval.ks=[5, 20]", "--set", "eval.select=ndcg@5")
    return out, run, history


def test_loss_falls_under_zero_3(ks_run):
    out, run, history = ks_run
    steps = json.loads((out / "steps.json").read_text())
    assert run["zero_stage"] == 3 and run["world_size"] == 2
    assert steps[-1]["loss"] < steps[0]["loss"] * 0.9, steps
    assert history[-1]["valid"]["ndcg@5"] > 0


def test_a_run_directory_of_another_model_is_refused_with_the_fix(shards, ks_run, tmp_path):
    out = ks_run[0]  # a finished run of the preset's model (dim 32), 2 workers; every refusal leaves it as it is
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    same = ["--config", "tiny-cpu", "--zero-stage", "3"]  # the run's stage: only what each case changes differs
    args = parser.parse_args(["--data", str(shards), "--output", str(out), *same, "--set", "model.dim=48"])
    with pytest.raises(ValueError, match=r"holds checkpoints of another run \(dim: 32 -> 48.*Use a new --output"):
        train.run(args)
    # another world size: DeepSpeed's partitioned optimizer state would not load
    args = parser.parse_args(["--data", str(shards), "--output", str(out), *same, "--workers", "1"])
    with pytest.raises(ValueError, match=r"world_size: 2 -> 1"):
        train.run(args)
    # other data with the same vocabulary (the ETL ran again on more events): resume, evaluate and export refuse
    other = tmp_path / "other_data"
    shutil.copytree(shards, other)
    m = json.loads((other / "manifest.json").read_text())
    m["rows"]["train"] += 1
    (other / "manifest.json").write_text(json.dumps(m))
    args = parser.parse_args(["--data", str(other), "--output", str(out), *same])
    with pytest.raises(ValueError, match=r"another run \(data: "):
        train.run(args)
    run = json.loads((out / "run.json").read_text())
    run["data_dir"] = str(other)
    check_same_data(run, other, m, explicit=True)  # --data given: the same vocabulary is enough
    with pytest.raises(DataDirError, match="changed since the run trained on it.*pass --data"):
        check_same_data(run, other, m, explicit=False)
    # another vocabulary: refused even with --data
    vocab = pq.read_table(other / "vocab" / "items")
    ids = vocab.column("item_id").to_pylist()
    ids[0], ids[1] = ids[1], ids[0]
    for f in (other / "vocab" / "items").glob("*.parquet"):
        f.unlink()
    pq.write_table(vocab.set_column(vocab.schema.get_field_index("item_id"), "item_id", pa.array(ids)),
                   other / "vocab" / "items" / "part-0.parquet")
    with pytest.raises(DataDirError, match="item vocabulary .* is not the run's"):
        check_same_data(run, other, m, explicit=True)


def test_resuming_on_another_zero_stage_is_refused_naming_both_stages(shards, ks_run, capsys, monkeypatch):
    """The ZeRO stage is part of what a checkpoint holds (another stage's partitioned optimizer state would not
    load): through the CLI, --set train.zero_stage or --zero-stage other than the run's (3) exits 2
    naming both stages and the fix, before Ray, with or without --force; the finished run (ZeRO-3) stands."""
    from interest.cli import main

    def no_ray(*a, **k):
        raise AssertionError("train reached Ray resuming on another ZeRO stage")

    out = ks_run[0]
    before = (out / "run.json").read_text()
    monkeypatch.setattr(train, "init_ray", no_ray)
    for flags, stages in ((["--set", "train.zero_stage=2"], "3 -> 2"), (["--zero-stage", "1", "--force"], "3 -> 1")):
        code = main(["train", "--data", str(shards), "--output", str(out), "--config", "tiny-cpu", *flags])
        err = capsys.readouterr().err
        assert code == 2 and f"holds checkpoints of another run (zero_stage: {stages})" in err, err
        assert "Use a new --output" in err and "Traceback" not in err, err
    assert (out / "run.json").read_text() == before


def test_a_killed_worker_restarts_from_the_latest_checkpoint_under_zero_0(shards, tmp_path, capfd):
    """SIGKILL one of the two workers mid-run: Ray Train restarts the worker group (train.max_failures defaults to
    3), which resumes from the latest complete checkpoint, and the run finishes its whole budget. The run is ZeRO-0
    (stage 3 is the ks_run fixture's, stage 2 the preset's that every other run here uses), its loss falls, and its
    MLflow URI cannot be written: the tracking failure is a warning while training goes on."""
    import threading

    from ray.util.state import list_actors

    from ray_train import checkpoints

    out, got = tmp_path / "killed", {}
    extra = ["--zero-stage", "0", "--epochs", "2", "--set", "train.max_steps_per_epoch=10",
             "--set", "train.val_every_steps=2", "--set", "train.early_stopping_patience=100",
             "--set", "train.mlflow_tracking_uri=file:///dev/null/mlruns"]  # /dev/null is no directory
    thread = threading.Thread(target=lambda: got.update(run=_train(shards, out, *extra)))
    thread.start()
    deadline = time.time() + 300
    while not checkpoints.complete_checkpoints(out) and thread.is_alive() and time.time() < deadline:
        time.sleep(0.2)
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert len(workers) == 2, workers
    os.kill(workers[1].pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive() and "run" in got, "the run did not finish after a worker was killed"
    run, history = got["run"]
    logs = capfd.readouterr()
    assert "resuming from checkpoint" in logs.out, logs.out[-3000:]
    assert "WARNING: MLflow failed" in logs.err and "training goes on" in logs.err, logs.err[-2000:]
    assert run["steps_run"] == 20 and [h["step"] for h in history] == list(range(2, 21, 2))
    assert run["zero_stage"] == 0 and run["world_size"] == 2
    steps = json.loads((out / "steps.json").read_text())
    assert steps[-1]["loss"] < steps[0]["loss"] * 0.95, steps
    assert history[-1]["valid"]["ndcg@10"] > 0
    # the killed workers' staging directories went with the run (their successors and the driver removed them)
    assert not list(Path(tempfile.gettempdir()).glob(checkpoints.staging_prefix(out, None) + "*"))


def test_eval_ks_drive_selection_metrics_and_the_report(ks_run):
    """eval.ks without 10 and eval.select=ndcg@5: training selects on it, evaluate and report use only those Ks."""
    from interest.cli import main

    out, run, history = ks_run
    assert run["selection"] == {"protocol": "full", "metric": "ndcg@5"} and run["best_valid_score"] > 0
    want = {f"{m}@{k}" for m in ("hr", "ndcg", "mrr") for k in (5, 20)}
    assert set(history[0]["valid"]) == want
    assert max(h["valid"]["ndcg@5"] for h in history) == run["best_valid_score"]
    assert main(["evaluate", "--run", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for result in (metrics["test"]["full"], metrics["valid"]["sampled100"],
                   metrics["baselines"]["popularity"]["full"], metrics["segments"]["warm_users"]["full"]):
        assert set(result) == want | {"n_users", "n_unrankable"}
    assert main(["report", "--run", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "NDCG@5" in page and "NDCG@20" in page and "@10" not in page


def test_refuses_unfinished_or_unknown_data(shards, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    (broken / "_SUCCESS").unlink()
    with pytest.raises(DataDirError, match="no _SUCCESS marker"):
        load_manifest(broken)
    (broken / "_SUCCESS").write_text("")
    m = json.loads((broken / "manifest.json").read_text())
    m["schema_version"] = 99
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataDirError, match="schema version 99"):
        load_manifest(broken)


@pytest.mark.parametrize("flags, message", [
    (["--set", "data.max_len=30"], "data.* settings are the ETL's"),
    (["--set", "model.n_heads=3"], "model.dim=32 is not divisible by model.n_heads=3"),
    (["--set", "model.arch=vae", "--set", "model.item_features=[text]"], "model.item_features"),
    (["--workers", "100000"], "cannot feed 100000 workers"),
])
def test_bad_settings_fail_before_ray_starts_naming_the_key(shards, tmp_path, capsys, monkeypatch, flags, message):
    """Through the CLI's own parsing: exit 2, one line naming the key and the fix, and Ray never reached (the
    session's instance is up, so the check is that train never asks for one)."""
    from interest.cli import main

    def no_ray(*a, **k):
        raise AssertionError("train reached Ray with a bad setting")

    monkeypatch.setattr(train, "init_ray", no_ray)
    code = main(["train", "--data", str(shards), "--output", str(tmp_path / "r"), "--config", "tiny-cpu", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pipeline_as_one_ray_job_against_a_local_head(tmp_path, capsys):
    """`ray start --head` on loopback (token auth, Ray 2.60's default), `ray job submit` of one `interest pipeline`
    whose ETL goes through the YARN template (cluster/spark/submit-yarn.sh with SPARK_MASTER=local[2]: the zip of
    interest_core + spark_jobs, the planner's sizing and etl.py reach a real spark-submit), then train, evaluate,
    report, export (by Ray Data actors) on the job's cluster, its console quiet; the same command again (through the
    CLI's main() here: every stage finished, nothing redone); then stop that head. This test's own Ray instance
    runs beside the head: the job's Ray helpers keep to the job's cluster."""
    generate(tmp_path / "synth", users=200, items=80, days=20, events=4000, seed=3)
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123456789abcdef")
    venv_bin = str(Path(sys.executable).parent)
    # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: SIGTERM stops the head at once (Ray 2.60 drains a node for 30 s first)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ["PATH"], "RAY_AUTH_MODE": "token",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    env.pop("RAY_ADDRESS", None)
    spark_env = {**plan_env("1e6"), "SPARK_MASTER": "local[2]", "PYSPARK_PYTHON": sys.executable,
                 "EXECUTOR_PYTHON": sys.executable, "SPARK_SUBMIT": f"{venv_bin}/spark-submit"}
    port, dash = _free_port(), _free_port()
    # Ray's Unix sockets live under --temp-dir and socket paths are capped at 107 bytes: keep it short.
    short_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = subprocess.Popen(
        [f"{venv_bin}/ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=6", "--include-dashboard=true",
         f"--temp-dir={short_tmp}",
         # free ports for the agents too: the defaults (dashboard agent 52365, ...) are taken when another Ray
         # instance runs on the machine, and then the job agent never starts ("No available agent")
         f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
         f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out = tmp_path / "job_run"
        deadline = time.time() + 120
        while True:
            probe = subprocess.run([f"{venv_bin}/ray", "job", "list", "--address", f"http://127.0.0.1:{dash}"],
                                   env=env, capture_output=True, text=True)
            if probe.returncode == 0 or time.time() > deadline:
                break
            time.sleep(2)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        submit = [f"{venv_bin}/ray", "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--working-dir",
                  str(REPO), "--runtime-env-json", json.dumps({"env_vars": spark_env}), "--", "python", "-m",
                  "interest.cli", "pipeline", "--config", "tiny-cpu", "--input", str(tmp_path / "synth"), "--format",
                  "synthetic", "--out", str(out), "--hmac-key-file", str(key), "--spark-submit",
                  "cluster/spark/submit-yarn.sh", "--epochs", "1", "--set", "export.actors=1",
                  "--train-args", "--set train.max_steps_per_epoch=3"]
        for _ in range(75):  # the head answers `job list` before its job agent is up ("No available agent"; up to
            # 5 minutes on a loaded 2-core machine)
            job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
            if "No available agent" not in job.stderr + job.stdout:
                break
            time.sleep(4)
        console = job.stdout + job.stderr
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in console.lower()
        assert "Found multiple active Ray instances" not in console and "Traceback" not in console, console[-3000:]
        # the job's own console (what `ray job submit` tails) from the training on: stages, progress and results, no
        # library chatter (spark-submit's own log lines before it are the cluster template's, as on a cluster)
        driver = console.split("== pipeline: train")[1].split("Job 'raysubmit_")[0]
        assert "== pipeline: export" in driver and "[interest] step" in driver and not chatter(driver), driver
        record = json.loads((out / "pipeline.json").read_text())
        assert list(record["stages"]) == ["etl", "train", "evaluate", "report", "export"]
        assert record["arguments"]["format"] == "synthetic"
        m = load_manifest(resolve_data_dir(out / "data"))
        assert m["config"]["data"]["num_files"] == int(spark_env["ETL_NUM_FILES"])  # the planner's --set reached it
        assert m["pseudonymization"]["key_source"] == "file" and "0123456789abcdef" not in json.dumps(m)
        assert "0123456789abcdef" not in console
        assert json.loads((out / "run" / "run.json").read_text())["steps_run"] == 3
        assert (out / "run" / "metrics.json").exists() and (out / "run" / "report.html").exists()
        exported = json.loads((out / "export" / "export.json").read_text())
        assert exported["scored_by"] == "ray_data_actors"  # a job: the export's actor (export.actors) runs on its cluster
        assert exported["profiles"] == m["rows"]["test"]
        from interest.cli import main

        capsys.readouterr()
        assert main(submit[submit.index("interest.cli") + 1:]) == 0
        assert capsys.readouterr().out.count("not redone") == 5
        assert json.loads((out / "pipeline.json").read_text()) == record
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(short_tmp, ignore_errors=True)
