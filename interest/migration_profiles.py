"""The interest-migration fields of a user profile (`interest export`): the three drift scores, the `migrated` flag,
the estimated migration time and the top categories before and after, from the user's drift_test row.

The flag rule is fitted once on the driver (`fit_settings`: the latent z-score's moments on the first rows of
drift_test, the threshold on the fitting users' drift_valid rows as `interest evaluate` chooses it,
drift.fitting_users) and applied unchanged by every Ray Data actor to every user, fitting or held out, so a user's
flag does not depend on which batch it was scored in. On data whose test split fits in FIT_ROWS, the export flags
exactly the users `interest evaluate --latent` puts in its `migrated` segment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interest.migration_scores import DriftScorer, FlagRule, fit_rule, load_latent, truth_times
from interest_core import drift
from interest_core.batches import read_head
from interest_core.contract import DRIFT_COLUMNS, item_categories, split_files
from interest_core.migration_config import MigrationConfig
from interest_core.tags import category_names

FIT_ROWS = 200_000  # drift_test / drift_valid rows read to fit the flag rule (the threshold: their fitting users)
TOP_CATEGORIES = 3  # categories before / after per user
_f64 = pa.float64()
MIGRATION_FIELDS = [
    pa.field("drift_latent", _f64),  # z-score of the latent divergence (null without --latent)
    pa.field("drift_sequence", _f64),  # cosine distance of the sequence model's state after early vs all events
    pa.field("drift_category_js", _f64),  # Jensen-Shannon divergence (bits) of the windows' category shares
    pa.field("migrated", pa.bool_()),  # the flag (FlagRule); null when the user lacks events in either window
    pa.field("migration_time", pa.int64()),  # unix s, the latent change point; flagged users with --latent only
    pa.field("categories_before", pa.list_(pa.string())),  # top categories of the early window, by share
    pa.field("categories_after", pa.list_(pa.string())),  # top categories of the recent window (last W days)
]


@dataclass(frozen=True)
class MigrationSettings:
    cfg: MigrationConfig
    rule: FlagRule
    latent_run: str | None  # a `--model vae` run on the same data (its posteriors give drift_latent)


def drift_scorer(data_dir: str | Path, cfg: MigrationConfig, sequence, latent_run: str | Path | None,
                 batch_size: int) -> DriftScorer:
    """The export's scorer: the run's sequence model, and --latent's MultVAE when given."""
    num_items = sequence.args.num_items
    latent = load_latent(latent_run, num_items) if latent_run else None
    return DriftScorer(item_categories(data_dir, num_items), cfg, latent, sequence, batch_size)


class MigrationProfiler:
    """Drift rows of a batch of users -> MIGRATION_FIELDS, with the driver's flag rule."""

    def __init__(self, data_dir: str | Path, settings: MigrationSettings, sequence, batch_size: int):
        self.s = settings
        self.scorer = drift_scorer(data_dir, settings.cfg, sequence, settings.latent_run, batch_size)
        cats = pq.read_table(Path(data_dir) / "vocab" / "categories", columns=["category", "category_idx"])
        self.names = category_names(*cats.to_pydict().values())

    def fields(self, user_ids: list[str], drift_rows: dict[str, list] | None) -> dict[str, pa.Array]:
        n = len(user_ids)
        cols = {f.name: pa.nulls(n, f.type) for f in MIGRATION_FIELDS}
        if drift_rows is None or not drift_rows["user_id"]:
            return cols
        scored = self.scorer.score(drift_rows, self.s.rule.latent_stats)
        w = scored["windows"]
        where = {drift_rows["user_id"][i]: j for j, i in enumerate(w.rows)}  # user -> index among scored rows
        at = [where.get(u) for u in user_ids]
        flags = self.s.rule.flags(scored)
        times = np.full(len(w.rows), -1, dtype=np.int64)
        if self.scorer.latent is not None and flags.any():
            times[flags] = self.scorer.migration_times(drift_rows, w.rows[flags])

        values = {"drift_latent": scored["latent"], "drift_sequence": scored["sequence"],
                  "drift_category_js": scored["category_js"], "migrated": flags,
                  "migration_time": [t if t >= 0 else None for t in times.tolist()],
                  "categories_before": [self._top(e) for e in w.early],
                  "categories_after": [self._top(r) for r in w.recent]}
        for f in MIGRATION_FIELDS:
            v = values[f.name]
            if v is not None:
                v = v.tolist() if isinstance(v, np.ndarray) else v
                cols[f.name] = pa.array([None if j is None else v[j] for j in at], f.type)
        return cols

    def _top(self, bag: np.ndarray) -> list[str]:
        shares = drift.category_distribution(bag, self.scorer.item_category)
        return [self.names[c] for c in sorted(shares, key=lambda c: (-shares[c], c))[:TOP_CATEGORIES]]


def fit_settings(data_dir: str | Path, cfg: MigrationConfig, sequence, latent_run: str | Path | None,
                 batch_size: int, fit_rows: int = FIT_ROWS) -> MigrationSettings | None:
    """The flag rule fitted on the first fit_rows drift_test rows (the latent moments) and drift_valid rows (the
    threshold, on their fitting users: migration_scores.fit_rule), driver side; None when the data has no drift
    rows (an ETL older than schema 6)."""
    data_dir = Path(data_dir)
    if not (data_dir / "drift_test").is_dir():
        return None
    scorer = drift_scorer(data_dir, cfg, sequence, latent_run, batch_size)
    test = scorer.score(read_head(split_files(data_dir, "drift_test"), DRIFT_COLUMNS, fit_rows).to_pydict())
    truth = truth_times(data_dir)
    valid = read_head(split_files(data_dir, "drift_valid"), DRIFT_COLUMNS, fit_rows).to_pydict() \
        if truth is not None and (data_dir / "drift_valid").is_dir() else None
    rule = fit_rule(scorer, test, cfg, truth, valid)
    return MigrationSettings(cfg, rule, str(Path(latent_run).resolve()) if latent_run else None)
