"""The `export` section of the config: what `interest export` writes per user and how it groups users.

Defaults were chosen on the synthetic data's validation users and MovieLens-100K (README: Profiles and segments);
`interest export` flags (--top-k, --segments, --reengage-below) override the run's values.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    top_k: int = Field(20, ge=1)
    """Recommendations per user (profiles' top_items); their categories also feed the interest tags."""
    segments: int | Literal["auto"] = "auto"
    """k-means segments over user embeddings: a number, or auto = the k in 2..max_segments with the best
    silhouette on the fitting sample."""
    max_segments: int = Field(12, ge=2)
    segment_sample: int = Field(20_000, ge=2)
    """Users whose embeddings fit k-means (the first ones in stored order, i.e. pseudo-random by user hash)."""
    tags_per_level: int = Field(3, ge=1)
    """Interest tags per catalog level in a profile."""
    tag_half_life_days: float | Literal["decay"] = 14.0
    """Half-life of an event's weight in the interest tags, in days; "decay": each user's own half-life from the
    decay head (days until P(next event) reaches 1/2, clipped to tag_half_life_bounds_days; the fixed 14 days for a
    user without one or for a model without the head). 14 beat "decay" on the synthetic validation users."""
    tag_half_life_bounds_days: tuple[float, float] = (1.0, 365.0)
    tag_predicted_weight: float = Field(0.25, ge=0.0, le=1.0)
    """Share of a tag's weight from the model's next-item distribution summed by category (the rest: the
    history's time-decayed categories)."""
    reengage_below: float = Field(0.5, gt=0.0, le=1.0)
    """Re-engagement list: users whose P(active within the horizon) is below this."""
    actors: int | None = Field(None, ge=1)
    """Ray Data actors that score users (each loads the model once); None = one per GPU, else the CPUs Ray has."""
    batch_size: int = Field(1024, ge=1)
    """Users per scoring batch inside an actor."""

    @field_validator("tag_half_life_days")
    @classmethod
    def _positive(cls, v: float | str) -> float | str:
        if v != "decay" and not v > 0:
            raise ValueError(f"export.tag_half_life_days={v!r}: give a positive number of days or decay")
        return v

    @field_validator("tag_half_life_bounds_days")
    @classmethod
    def _bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"export.tag_half_life_bounds_days={list(v)}: give [low, high] days, 0 < low <= high")
        return v
