import json

import pytest

from cluster.memory_model import rank_memory
from cluster.plan import format_table, plan, suggest
from interest.cli import main
from interest_core.config import load_config
from interest_core.zero import reduce_bucket_elements, zero_config


def test_zero_stages_shrink_model_states_per_rank():
    cfg = load_config("large")
    by_stage = {}
    for stage in (0, 1, 2, 3):
        c = cfg.model_copy(update={"train": cfg.train.model_copy(update={"zero_stage": stage})})
        by_stage[stage] = plan(c, num_items=4_000_000, gpus=16)
    states = [by_stage[s]["memory_gib_per_rank"]["model_states"] for s in (0, 1, 2, 3)]
    assert states[0] > states[1] == states[2] > states[3]  # ZeRO-2 partitions gradients, which are transient
    p = by_stage[3]["model"]["params"]
    # bf16: weights + fp32 master + Adam moments; ZeRO-3 adds the bf16 gradient partition and the reduce bucket
    assert states[0] == pytest.approx(14 * p / 2**30)
    assert states[3] == pytest.approx((16 * p / 16 + 2 * min(reduce_bucket_elements(3), p)) / 2**30)
    assert by_stage[3]["model"]["loss"] == "sampled"  # 4M items is above the full-softmax threshold
    for r in by_stage.values():
        m = r["memory_gib_per_rank"]
        assert m["total"] == pytest.approx(m["model_states"] + m["activations"] + m["loss_logits"] + m["transient"])


def test_memory_model_phases_on_cpu_fp32():
    """fp32 ZeRO-0 on CPU: weights + Adam persist; the step adds the gradients and the larger of the flat
    all-reduce bucket and AdamW's two temporaries of the largest tensor; ZeRO-3's backward holds the gathered
    table, its gradient and (tied output layer) the second dense gradient."""
    p, t, k = 10_000_000, 8_000_000, 50_000_000
    m = rank_memory(p, t, tied=True, world=2, stage=0, bf16=False, activations=1.0, logits=2.0, bucket_elements=k)
    assert m["model_states"] == 12 * p and m["peak_phase"] == "step"
    assert m["total"] == 12 * p + 3 + 4 * p + max(4 * p, 8 * t)
    m3 = rank_memory(p, t, tied=True, world=2, stage=3, bf16=False, activations=0, logits=0, bucket_elements=k)
    assert m3["model_states"] == 20 * p / 2 + 4 * p and m3["peak_phase"] == "backward"
    assert m3["transient"] == 3 * 4 * t
    untied = rank_memory(p, t, tied=False, world=2, stage=3, bf16=False, activations=0, logits=0, bucket_elements=k)
    assert untied["transient"] == 2 * 4 * t  # no second dense gradient without the tied output layer
    with pytest.raises(ValueError, match="ZeRO stage"):
        rank_memory(p, t, tied=True, world=2, stage=4, bf16=False, activations=0, logits=0, bucket_elements=k)


def test_engine_and_planner_read_the_same_zero_settings():
    from ray_train.engine import deepspeed_config

    cfg = load_config("base", ["train.zero_stage=3"])
    ds = deepspeed_config(cfg.train, world_size=2, on_gpu=False)
    assert ds["zero_optimization"]["reduce_bucket_size"] == reduce_bucket_elements(3) == 50_000_000
    assert ds["zero_optimization"] == zero_config(3)["zero_optimization"]
    with pytest.raises(ValueError, match="zero_stage"):
        zero_config(5)


def test_plan_time_scales_with_data_and_gpus():
    cfg = load_config("base")
    a = plan(cfg, num_items=100_000, train_sequences=1_000_000, gpus=1)
    b = plan(cfg, num_items=100_000, train_sequences=2_000_000, gpus=2)
    assert b["time"]["seconds_per_epoch"] == pytest.approx(a["time"]["seconds_per_epoch"])
    assert "memory_gib_per_rank.total" in format_table(a)


def test_plan_cli_prints_table_and_json(capsys):
    assert main(["plan", "--config", "base", "--num-items", "50000", "--gpus", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parallel"]["world_size"] == 4 and out["memory_gib_per_rank"]["fits"] is True


def test_plan_sizes_checkpoint_and_export():
    cfg = load_config("base")
    a = plan(cfg, num_items=100_000, train_sequences=1_000_000, gpus=4)
    p = a["model"]["params"]
    assert a["checkpoint"]["gib"] == pytest.approx(14 * p / 2**30)  # bf16 weights + fp32 master + Adam moments
    assert a["checkpoint"]["storage_gib"] == pytest.approx((14 * p * cfg.train.keep_checkpoints + 4 * p) / 2**30)
    b = plan(cfg, num_items=100_000, train_sequences=1_000_000, gpus=8, export_users=2_000_000)
    assert b["export"]["seconds"] == pytest.approx(a["export"]["seconds"])  # twice the users on twice the GPUs


def test_suggest_finds_the_smallest_change_that_fits():
    cfg = load_config("large")
    assert suggest(cfg, num_items=4_000_000, gpus=16) is None  # fits: nothing to change
    small = cfg.model_copy(update={"train": cfg.train.model_copy(update={"zero_stage": 0})})
    assert not plan(small, num_items=4_000_000, gpus=16, gpu_mem_gib=32)["memory_gib_per_rank"]["fits"]
    fix = suggest(small, num_items=4_000_000, gpus=16, gpu_mem_gib=32)
    assert fix["plan"]["memory_gib_per_rank"]["fits"] and fix["change"].startswith("train.zero_stage=")
    # ZeRO-1 alone does not fit: the first stage that does is named, not a bigger one
    stage = int(fix["change"].split("=")[1])
    if stage > 1:
        lower = small.model_copy(update={"train": small.train.model_copy(update={"zero_stage": stage - 1})})
        assert not plan(lower, num_items=4_000_000, gpus=16, gpu_mem_gib=32)["memory_gib_per_rank"]["fits"]
    # a GPU far too small: every change at once, then more GPUs
    fix = suggest(small, num_items=4_000_000, gpus=2, gpu_mem_gib=2)
    assert "--gpus" in fix["change"] or "does not fit" in fix["change"]


CAL = {"measured": {"events": 10_000_000, "cores": 2, "etl_seconds": 300.0, "jvm_peak_mb": 6000,
                    "shuffle_partitions": 16, "num_files": 8},
       "core_seconds_per_million_events": {"ingest": 10.0, "sequences": 30.0},
       "bytes_per_event": {"input": 30.0, "shuffle": 80.0, "output": 60.0}}


def test_etl_plan_scales_from_the_calibration():
    from cluster.etl_plan import plan_etl

    a = plan_etl(1_000_000_000, 8, CAL, executors=10, executor_cores=4)
    assert a["core_hours"] == pytest.approx(40.0 * 1000 / 3600)
    assert a["hours"] == pytest.approx(a["core_hours"] / 40)
    assert a["bytes"]["shuffle_gib"] == pytest.approx(80e9 / 2**30)
    assert a["shuffle_partitions"] % 40 == 0 and a["shuffle_partitions"] >= 16 * 100
    assert a["executor_memory"] == "12g"  # 3000 MB per measured core x 4 cores
    b = plan_etl(2_000_000_000, 8, CAL, executors=20, executor_cores=4)
    assert b["hours"] == pytest.approx(a["hours"]) and b["bytes"]["shards_gib"] == pytest.approx(
        2 * a["bytes"]["shards_gib"])
    c = plan_etl(1_000_000_000, 8, CAL, executor_cores=4, target_hours=0.5)  # executors sized to the target
    assert c["hours"] <= 0.5 and c["executors"] == 6
    # a shard file holds no more than one of the measured run's (60 B/event x 10M / 8 files): 100x the events, 800
    assert c["shards"]["num_files"] == 800 and c["shards"]["file_mib"] == pytest.approx(60e7 / 8 / 2**20)
    with pytest.raises(ValueError):
        plan_etl(0, 8, CAL)


def test_packaged_calibration_is_a_measured_run():
    from cluster.etl_plan import load_calibration

    cal = load_calibration()
    assert cal["measured"]["events"] >= 1_000_000 and "bench/etl_bench.py" in cal["measured"]["command"]
    assert all(v > 0 for v in cal["core_seconds_per_million_events"].values())


def test_plan_cli_spark_env_and_etl_section(capsys):
    assert main(["plan", "--events", "1e9", "--executors", "20", "--spark-env"]) == 0
    env = dict(line.removeprefix("export ").split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert env["SPARK_EXECUTORS"] == "20" and env["SPARK_EXECUTOR_MEMORY"].endswith("g")
    assert int(env["SPARK_SHUFFLE_PARTITIONS"]) % 80 == 0
    assert main(["plan", "--events", "1e10", "--executors", "50"]) == 0
    out = capsys.readouterr().out
    assert "etl.hours" in out and "etl.executor_memory" in out
    assert main(["plan", "--events", "1e10", "--etl-hours", "0.5", "--export-users", "1000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["etl"]["hours"] <= 0.5 and out["export"]["users"] == 1000
    with pytest.raises(SystemExit, match="give --events"):
        main(["plan", "--spark-env"])
