import json

import pytest

from cluster.plan import format_table, plan
from interest.cli import main
from interest_core.config import load_config


def test_zero_stages_shrink_model_states_per_rank():
    cfg = load_config("large")
    by_stage = {}
    for stage in (0, 1, 2, 3):
        c = cfg.model_copy(update={"train": cfg.train.model_copy(update={"zero_stage": stage})})
        by_stage[stage] = plan(c, num_items=4_000_000, gpus=16)
    states = [by_stage[s]["memory_gib_per_rank"]["model_states"] for s in (0, 1, 2, 3)]
    assert states == sorted(states, reverse=True) and states[3] == pytest.approx(states[0] / 16)
    p = by_stage[3]["model"]["params"]
    assert by_stage[0]["memory_gib_per_rank"]["model_states"] == pytest.approx(16 * p / 2**30)
    assert by_stage[3]["model"]["loss"] == "sampled"  # 4M items is above the full-softmax threshold


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
