"""The `export` section of the config: what `interest export` writes per user and how it groups users.

tag_predicted_weight was chosen on the synthetic data's validation users (bench/tags_bench.py; README: Profiles,
segments and serving); the rest are sizes. `interest export` flags (--top-k, --segments, --reengage-below) override the run's values.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    top_k: int = Field(20, ge=1)
    """Recommendations per user (profiles' top_items)."""
    segments: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """k-means segments over user embeddings: a number, or auto = the k in 2..max_segments with the best
    silhouette on the fitting sample."""
    max_segments: int = Field(12, ge=2)
    segment_sample: int = Field(20_000, ge=2)
    """Users whose embeddings fit k-means (the first ones in stored order, i.e. pseudo-random by user hash)."""
    tags_per_level: int = Field(3, ge=1)
    """Interest tags per catalog level in a profile."""
    tag_predicted_weight: float = Field(0.25, ge=0.0, le=1.0)
    """Share of a tag's weight from the model's next-item distribution summed by category (the rest: the whole
    history's time-decayed categories, data.tag_half_life_days)."""
    reengage_below: float = Field(0.5, gt=0.0, le=1.0)
    """Re-engagement list: users whose P(active within the horizon) is below this."""
    actors: int | None = Field(None, ge=1)
    """Ray Data actors that score users (each loads the model once); None = one per GPU, else one per CPU Ray has but
    one (left for Ray Data's own tasks). None without a cluster (--address, RAY_ADDRESS) and with few test users
    (interest/export/batch.py DRIVER_MAX_USERS): scored in the export's own process, with no Ray at all."""
    batch_size: int = Field(1024, ge=1)
    """Users per scoring batch inside an actor."""
