"""DeepSpeed's ZeRO settings, one JSON file per stage (deepspeed/zero{0,1,2,3}.json): the training engine builds its
DeepSpeed config from them and the capacity planner reads their bucket sizes, so both see the same numbers."""
from __future__ import annotations

import json
from importlib import resources

# DeepSpeed 0.19's defaults for what a stage's file leaves out (deepspeed/runtime/zero/config.py)
DEFAULT_REDUCE_BUCKET = 500_000_000
DEFAULT_ALLREDUCE_BUCKET = 500_000_000  # stage 0's gradient all-reduce (engine.allreduce_bucket_size)


def zero_config(stage: int) -> dict:
    """The package's DeepSpeed config for ZeRO `stage` (0-3), before batch sizes and precision are filled in."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"train.zero_stage must be 0, 1, 2 or 3, not {stage!r}")
    return json.loads((resources.files("interest_core") / "deepspeed" / f"zero{stage}.json").read_text())


def reduce_bucket_elements(stage: int) -> int:
    """Elements of the gradient bucket ZeRO-1/2/3 reduces through (stage 0: the all-reduce bucket)."""
    z = zero_config(stage)["zero_optimization"]
    return int(z.get("reduce_bucket_size", DEFAULT_REDUCE_BUCKET if stage else DEFAULT_ALLREDUCE_BUCKET))
