"""The `migration` section of the config: how interest migration is measured (interest_core/drift.py).

Read by `interest evaluate` and `interest export` from the drift rows the ETL writes, so changing it needs no new
ETL. window_days and divergence were chosen on the synthetic data's fitting users (drift.fitting_users: disjoint from
the users the figures are measured on; README: Interest migration).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MigrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    window_days: float = Field(21.0, gt=0)
    """The recent window W: drift compares a user's events in the last W days before the end of observation with
    all earlier ones."""
    divergence: Literal["w2", "sym_kl"] = "w2"
    """Latent drift: squared 2-Wasserstein distance or symmetric KL between the two windows' posteriors."""
    threshold_z: float = 2.0
    """The `migrated` flag is drift z-score > this when the data has no migration truth; with truth (synthetic
    data) the threshold with the best F1 on the fitting users' validation rows (drift.fitting_users) is used instead."""
    change_candidates: int = Field(32, ge=1)
    """Day boundaries tried per user when locating the migration time (evenly spaced over the history)."""
    top_paths: int = Field(20, ge=1)
    """Category -> category migration paths reported (the most frequent among flagged users)."""
