"""bench/gpu_check.py without a GPU and without training: its arguments, the no-GPU exit, the stage runner, the
catalog and card tables, the run schedule, and the row it makes from a GPU run's records; and the trainer's hook
that writes those records (ray_train/engine.gpu_record, called by loop._record_validation)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import gpu_check as gc  # noqa: E402

from cluster.plan import plan  # noqa: E402
from interest_core.config import load_config  # noqa: E402
from ray_train import engine as engine_mod, loop  # noqa: E402


def _script(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}  # no GPU, whatever this machine has
    return subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        gc.parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(f in out for f in ("--workdir", "--budget-s", "--steps", "--large-items", "--peak-tflops",
                                  "--require-gpu"))


def test_without_a_gpu_it_says_so_at_once_and_exits_0_or_2_when_required(tmp_path):
    work = tmp_path / "w"
    got = _script("--workdir", str(work))
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("gpu_check: no GPU: ") and "Nothing was measured" in got.stdout
    required = _script("--workdir", str(work), "--require-gpu")
    assert required.returncode == 2 and required.stdout == got.stdout
    assert not work.exists()  # nothing generated, nothing trained


@pytest.mark.parametrize("flags, message", [
    (["--steps", "3"], "argument --steps: must be an even number >= 2"),
    (["--steps", "0"], "argument --steps: must be an even number >= 2"),
    (["--budget-s", "0"], "argument --budget-s: must be > 0, got 0"),
    (["--large-items", "50"], "argument --large-items: must be >= 100 items, got 50"),
    (["--peak-tflops", "-1"], "argument --peak-tflops: must be > 0, got -1"),
])
def test_bad_arguments_exit_2_naming_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit) as e:
        gc.parse_args(flags)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_defaults():
    a = gc.parse_args([])
    assert (a.budget_s, a.steps, a.large_items, a.peak_tflops, a.require_gpu) == (300.0, 200, None, None, False)


def test_a_failing_stage_names_itself_its_last_line_and_its_log(tmp_path):
    log = tmp_path / "s.log"
    with pytest.raises(gc.StageFailed, match=r"^etl base: exit 3: boom \(log: .*s\.log\)$"):
        gc.run_stage("etl base", [sys.executable, "-c", "print('x'); print('boom'); raise SystemExit(3)"], log,
                     gc.Budget(60))
    assert gc.run_stage("ok", [sys.executable, "-c", "print(1)"], log, gc.Budget(60)) >= 0


def test_a_stage_over_the_budget_is_stopped_and_none_starts_after(tmp_path):
    budget = gc.Budget(1.0)
    with pytest.raises(gc.StageFailed, match="train base on the GPU: stopped at the --budget-s limit after 1s"):
        gc.run_stage("train base on the GPU", [sys.executable, "-c", "import time; time.sleep(60)"],
                     tmp_path / "s.log", budget)
    with pytest.raises(gc.StageFailed, match="train large on the GPU: not started, --budget-s is spent"):
        gc.run_stage("train large on the GPU", [sys.executable, "-c", "print(1)"], tmp_path / "t.log", budget)


def test_large_catalog_is_the_largest_the_planner_fits_on_the_card():
    cfg = load_config("large", ["train.workers=1"])

    def fits(n, gib):
        return plan(cfg, n, gpus=1, gpu_mem_gib=gib)["memory_gib_per_rank"]["fits"]

    n = gc.large_catalog(80.0)
    assert n == 100_000 and fits(n, 80.0)
    small = gc.large_catalog(24.0)
    assert small is not None and small < n and fits(small, 24.0)
    assert not fits(gc.LARGE_ITEMS[gc.LARGE_ITEMS.index(small) - 1], 24.0)
    assert gc.large_catalog(1.0) is None


@pytest.mark.parametrize("name, tflops", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                          ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                          ("NVIDIA L40S", 362.0), ("NVIDIA L4", 121.0), ("Tesla T4", None)])
def test_peak_tflops_by_card_name(name, tflops):
    assert gc.peak_tflops(name) == tflops


@pytest.mark.parametrize("rows, steps, expect", [
    (100_000, 200, ["train.epochs=1", "train.max_steps_per_epoch=200", "train.val_every_steps=100"]),
    (128 * 70, 200, ["train.epochs=3", "train.max_steps_per_epoch=70", "train.val_every_steps=105"]),
])
def test_schedule_runs_about_the_steps_validated_at_the_half_and_the_end(rows, steps, expect):
    assert gc.schedule(rows, "base", steps) == expect + [f"eval.max_valid_users={gc.VALID_USERS}"]


class _FakeEngine:
    """What gpu_record and _record_validation read of a DeepSpeed engine on one GPU."""

    def __init__(self):
        self.module = torch.nn.Linear(2, 2).to(torch.bfloat16)

    def bfloat16_enabled(self):
        return True

    def get_lr(self):
        return [1e-3]


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda as the worker on one GPU sees it, NCCL with one rank; the peak resets are counted."""
    peak, resets = [3.5 * 2**30], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: peak[0])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: resets.append(1))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *a: "nccl")
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a: 1)
    return peak, resets


def test_gpu_record_on_cuda_and_none_on_the_cpu(fake_cuda, monkeypatch):
    assert engine_mod.gpu_record(_FakeEngine()) == {
        "device": "NVIDIA H100 80GB HBM3", "backend": "nccl", "world_size": 1, "bf16": True,
        "param_dtype": "bfloat16", "peak_allocated_mib": 3.5 * 1024}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert engine_mod.gpu_record(_FakeEngine()) is None


def _validate(monkeypatch, ndcg: float):
    metrics = {"hr@10": ndcg, "ndcg@10": ndcg, "mrr@10": ndcg}
    monkeypatch.setattr(loop, "validate", lambda *a, **k: {"full": metrics, "full_exclude_seen": metrics})
    monkeypatch.setattr(loop.dist, "all_reduce", lambda t: None)


def _record(cfg, state, seqs: int) -> None:
    window = loop._Window()
    window.add(seqs, 5.0)
    loop._record_validation(_FakeEngine(), None, None, cfg, {}, state, window, n_steps=100, out=None)


def test_each_validation_records_the_gpu_path_and_resets_the_peak_only_on_cuda(fake_cuda, monkeypatch):
    peak, resets = fake_cuda
    cfg = load_config("base", ["train.workers=1"])
    _validate(monkeypatch, 0.1)
    state = loop._fresh_state()
    _record(cfg, state, 1280)
    peak[0] = 2.0 * 2**30
    _record(cfg, state, 2560)
    assert [h["gpu"]["peak_allocated_mib"] for h in state["history"]] == [3584.0, 2048.0] and len(resets) == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = loop._fresh_state()
    _record(cfg, cpu, 1280)
    assert "gpu" not in cpu["history"][0] and len(resets) == 2  # the CPU's history and calls are as before


def _got(history: list[dict], preset: str = "base", num_items: int = 5002) -> dict:
    cfg = load_config(preset, ["train.workers=1"])
    return {"seconds": 42.0, "history": history,
            "run": {"config": cfg.to_dict(), "world_size": 1, "steps_run": history[-1]["step"],
                    "manifest": {"vocab": {"num_items": num_items, "num_event_types": 5}, "rows": {"train": 9000}}}}


def _entry(step: int, seqs: int, seq_per_s: float, ndcg: float, gpu: dict | None) -> dict:
    return {"step": step, "sequences": seqs, "seq_per_s": seq_per_s, "valid": {"ndcg@10": ndcg}} | (
        {"gpu": gpu} if gpu else {})


def test_a_gpu_run_becomes_a_row_beside_the_planner(fake_cuda, monkeypatch):
    peak, _ = fake_cuda
    record = engine_mod.gpu_record(_FakeEngine())  # the trainer's own record, as history.json holds it
    peak[0] = 1.0 * 2**30
    later = engine_mod.gpu_record(_FakeEngine())
    history = [_entry(100, 12_800, 1000.0, 0.05, record), _entry(200, 12_800, 4000.0, 0.08, later),
               _entry(201, 128, 9000.0, 0.09, later)]  # a one-step tail window is not the throughput
    row = gc.summarize(_got(history), targets_per_row=30.0, card_gib=80.0, tflops=989.0)
    cfg = load_config("base", ["train.workers=1"])
    p = plan(cfg, 5002, 5, gpus=1, gpu_mem_gib=80.0, gpu_tflops=989.0, bf16=True)
    assert row["problem"] is None and row["path"] == "NVIDIA H100 80GB HBM3, nccl, 1 rank, bfloat16"
    assert row["tokens_per_s"] == 4000.0 * 50 and row["targets_per_s"] == 4000.0 * 30.0
    assert row["peak_gib"] == 3.5 and row["plan_gib"] == p["memory_gib_per_rank"]["total"]
    assert row["plan_over_measured"] == pytest.approx(p["memory_gib_per_rank"]["total"] / 3.5)
    assert row["mfu"] == pytest.approx(4000.0 * 50 * p["model"]["flops_per_token"] / 989e12)
    assert row["ndcg10"] == 0.09 and row["catalog"] == 5002 and row["steps"] == 201
    cpu = gc.summarize(_got([_entry(100, 12_800, 300.0, 0.05, None), _entry(200, 12_800, 400.0, 0.06, None)]),
                       30.0, 80.0, 989.0)
    assert cpu["path"] == "CPU" and cpu["mfu"] is None and cpu["peak_gib"] is None
    assert cpu["problem"].startswith("trained on the CPU")
    text = gc.table({"base": row}, cpu)
    assert "| base | 5,002 | NVIDIA H100 80GB HBM3, nccl, 1 rank, bfloat16 | 201 (42) | 200,000 | 120,000 | 3.50 |" \
        in text and "| 0.0900 | 0.0600 (1.50x) |" in text


def test_a_gpu_run_off_the_expected_path_is_named(fake_cuda):
    record = engine_mod.gpu_record(_FakeEngine()) | {"backend": "gloo", "bf16": False, "param_dtype": "float32"}
    assert gc.path_problem([{"gpu": record}]) == ("not the expected GPU path: backend='gloo', bf16=False, "
                                                  "param_dtype='float32'")
