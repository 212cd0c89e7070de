"""`interest pipeline`'s bookkeeping through the CLI (the stages themselves are the commands tested elsewhere; here
they are recorded calls): finished stages are not redone, a stage that failed runs again, other arguments are
refused unless --redo covers the first stage they change, --until stops early."""
from __future__ import annotations

import json

import pytest

from interest import pipeline
from interest.cli import main

BASE = ["pipeline", "--config", "tiny-cpu", "--input", "events", "--format", "synthetic", "--hmac-key-file", "key"]


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fake(name):
        def work(args, out):
            if name == "train" and (out / "fail_train").exists():
                raise RuntimeError("worker died")
            seen.append((name, args.epochs))
            (out / f"{name}.done").write_text("x")
        return work

    monkeypatch.setattr(pipeline, "WORK", {n: fake(n) for n in pipeline.STAGES})
    return seen


def test_pipeline_runs_each_stage_once_and_resumes(tmp_path, calls, capsys):
    out = ["--out", str(tmp_path / "p")]
    assert main(BASE + out + ["--until", "train"]) == 0
    assert [n for n, _ in calls] == ["etl", "train"]
    assert main(BASE + out) == 0  # resumes: only what is left
    assert [n for n, _ in calls] == ["etl", "train", "evaluate", "report", "export"]
    assert "etl (finished" in capsys.readouterr().out
    assert main(BASE + out) == 0 and len(calls) == 5  # all finished: nothing redone
    record = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert list(record["stages"]) == list(pipeline.STAGES) and record["arguments"]["config"] == "tiny-cpu"


def test_pipeline_reruns_a_failed_stage_and_refuses_changed_arguments(tmp_path, calls):
    p = tmp_path / "p"
    p.mkdir()
    (p / "fail_train").write_text("x")
    assert main(BASE + ["--out", str(p), "--epochs", "1"]) != 0
    assert "worker died" in (p / "interest-pipeline-error.log").read_text()
    assert [n for n, _ in calls] == ["etl"]
    (p / "fail_train").unlink()
    assert main(BASE + ["--out", str(p), "--epochs", "1"]) == 0  # train runs again, the ETL does not
    assert [n for n, _ in calls] == ["etl", "train", "evaluate", "report", "export"]
    with pytest.raises(SystemExit, match=r"--epochs: 1 then, 2 now.*--redo train"):
        main(BASE + ["--out", str(p), "--epochs", "2"])
    with pytest.raises(SystemExit, match="--redo train"):
        main(BASE + ["--out", str(p), "--epochs", "2", "--redo", "evaluate"])  # too late a stage for --epochs
    del calls[:]
    assert main(BASE + ["--out", str(p), "--epochs", "2", "--redo", "train"]) == 0
    assert calls == [("train", 2), ("evaluate", 2), ("report", 2), ("export", 2)]
    assert json.loads((p / "pipeline.json").read_text())["arguments"]["epochs"] == 2
    assert main(BASE + ["--out", str(p), "--epochs", "2", "--address", "auto"]) == 0  # where Ray runs: not checked
    assert len(calls) == 4


def test_pipeline_stage_commands_parse(tmp_path):
    """The argv each stage builds is accepted by that stage's own parser (a renamed flag fails here)."""
    from interest.cli import build_parser

    args = build_parser("pipeline").parse_args(BASE + ["--out", str(tmp_path), "--workers", "2", "--zero-stage", "3",
                                                       "--etl-args", "--split time --horizon-days 7",
                                                       "--train-args", "--max-failures 5", "--model", "hstu",
                                                       "--export-args", "--top-k 50 --segments 8",
                                                       "--address", "auto", "--set", "train.lr=0.002"])
    etl = build_parser("etl").parse_args(["etl", *pipeline.etl_argv(args, tmp_path / "data")])
    assert etl.split == "time" and etl.hmac_key_file == "key" and etl.overrides == ["train.lr=0.002"]
    train = build_parser("train").parse_args(["train", *pipeline.train_argv(args, tmp_path)])
    assert (train.workers, train.zero_stage, train.model, train.max_failures) == (2, 3, "hstu", 5)
    assert train.address == "auto" and train.data == str(tmp_path / "data") and train.output == str(tmp_path / "run")
    export = build_parser("export").parse_args(["export", *pipeline.export_argv(args, tmp_path)])
    assert (export.top_k, export.segments, export.address) == (50, "8", "auto")
