"""Interest migration measured on the drift rows: three drift scores per user, the `migrated` flag, the migration
time and the category paths (interest_core/drift.py says how windows are cut) -> metrics.json["migration"].

Drift scores, each over the users with events in both windows of a split:
  latent       z-score over the population of the divergence (migration.divergence) between the Mult-VAE
               posteriors of the early and the recent bag (needs a vae model: the run's own, or --latent RUN)
  sequence     cosine distance between the sequence model's user state after the early events and after all
  category_js  Jensen-Shannon divergence of the two windows' category distributions (the classical baseline)
Truth (synthetic data, planted/): a user migrated when the planted migration time falls inside the observed
history (an event before it and one at or after it, up to the end of observation). With truth, the users are split
by a fixed hash of the pseudonym (drift.fitting_users): the flag's threshold is fitted on the fitting half's valid
drift rows, and auc, precision, recall, f1 and time_within_7d are measured on the other half's test rows only (a
user's valid and test labels come from the same planted time). The flag is the first available of latent,
sequence, category_js above a threshold: the best F1 on the fitting users when there is truth, else
z > migration.threshold_z. Every test user is flagged (the `migrated` segment, the paths, the histogram). The
migration time (latent change point) is estimated for the flagged users.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from interest.migration_map import latent_map
from interest_core import drift
from interest_core.batches import collate
from interest_core.binary import auc
from interest_core.contract import DRIFT_COLUMNS, split_files
from interest_core.migration_config import MigrationConfig

SCORES = ("latent", "sequence", "category_js")


def read_drift_split(data_dir: str | Path, which: str) -> dict[str, list]:
    files = split_files(data_dir, f"drift_{which}")
    return pq.ParquetDataset(files).read(columns=DRIFT_COLUMNS).to_pydict()


def truth_times(data_dir: str | Path) -> dict[str, int | None] | None:
    """user pseudonym -> planted migration time (None = did not migrate); None when the data has no truth."""
    path = Path(data_dir) / "planted"
    if not path.is_dir():
        return None
    t = pq.read_table(path, columns=["user_id", "migration_ts"]).to_pydict()
    return dict(zip(t["user_id"], t["migration_ts"]))


def load_latent(latent_run: str | Path, num_items: int):
    """The MultVAE of a `--model vae` run over the same item ids (--latent), else a ValueError naming the fix."""
    from ray_train.models.saved import load_model

    model, _ = load_model(latent_run)
    if model.args.arch != "vae" or model.args.num_items != num_items:
        raise ValueError(f"--latent {latent_run}: needs a run of `interest train --model vae` on the same data "
                         f"(found a {model.args.arch} model over {model.args.num_items} item ids, this run has "
                         f"{num_items})")
    return model


def labels(rows: dict[str, list], idx: np.ndarray, truth: dict[str, int | None]) -> np.ndarray:
    """1 where the planted migration falls inside the user's observed history (an event on each side)."""
    out = np.zeros(len(idx), dtype=np.int64)
    for j, i in enumerate(idx):
        m = truth.get(rows["user_id"][i])
        ts = rows["ts"][i]
        out[j] = int(m is not None and ts[0] < m <= ts[-1] and m <= rows["end_ts"][i])
    return out


class DriftScorer:
    """Drift scores of drift rows with a latent (MultVAE) and/or a sequence model (either may be None)."""

    def __init__(self, item_category: np.ndarray, cfg: MigrationConfig, latent=None, sequence=None,
                 batch_size: int = 512):
        self.item_category, self.cfg, self.batch_size = item_category, cfg, batch_size
        self.latent, self.sequence = latent, sequence

    @torch.no_grad()
    def posteriors(self, bags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        means, logvars = [], []
        for s in range(0, len(bags), self.batch_size):
            items = torch.from_numpy(drift.pad_bags(bags[s:s + self.batch_size]))
            m, lv = self.latent.posterior(self.latent.with_categories(items))
            means.append(m.numpy())
            logvars.append(lv.numpy())
        d = self.latent.args.dim
        return (np.concatenate(means) if means else np.zeros((0, d)),
                np.concatenate(logvars) if logvars else np.zeros((0, d)))

    @torch.no_grad()
    def states(self, rows: dict[str, list], idx: np.ndarray, upto: np.ndarray) -> np.ndarray:
        """The sequence model's user state after each row's first upto[j] events."""
        L, out = self.sequence.args.max_len, []
        for s in range(0, len(idx), self.batch_size):
            part = {c: [rows[c][i][:k] for i, k in zip(idx[s:s + self.batch_size], upto[s:s + self.batch_size])]
                    for c in ("items", "event_types", "ts", "dt")}
            out.append(self.sequence.user_embedding(collate(part, L)).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.sequence.args.dim))

    def score(self, rows: dict[str, list], latent_stats: tuple[float, float] | None = None) -> dict:
        """{"windows", "category_js", "latent", "latent_divergence", "sequence"} (None where the model is missing)
        per scored user; latent = the divergence's z-score over these rows, or with latent_stats (mean, std) fitted
        on a sample of the population (the batch export)."""
        w = drift.cut(rows["items"], rows["ts"], rows["end_ts"], self.cfg.window_days * drift.DAY_S)
        js = np.array([drift.js_divergence(drift.category_distribution(e, self.item_category),
                                           drift.category_distribution(r, self.item_category))
                       for e, r in zip(w.early, w.recent)])
        out = {"windows": w, "category_js": js, "latent": None, "latent_divergence": None, "sequence": None}
        if self.latent is not None and len(w.rows):
            me, le = self.posteriors(w.early)
            mr, lr = self.posteriors(w.recent)
            out["latent_divergence"] = drift.DIVERGENCES[self.cfg.divergence](me, le, mr, lr)
            out["latent"] = drift.zscore(out["latent_divergence"], latent_stats)
        if self.sequence is not None and len(w.rows):
            ends = w.split_at + np.array([len(r) for r in w.recent])
            out["sequence"] = drift.cosine_distance(self.states(rows, w.rows, w.split_at),
                                                    self.states(rows, w.rows, ends))
        return out

    def candidate_splits(self, rows: dict[str, list], idx: np.ndarray
                         ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Every candidate change point of rows idx (drift.change_candidates over the events up to end_ts): the
        bags before and after it, interleaved [before_0, after_0, before_1, ...]; its owner (position in idx); and
        its time, the midpoint of the gap between the last event before and the first after (the planted change
        lies somewhere in that gap: the midpoint is the estimate with the smallest worst-case error)."""
        bags, owner, at = [], [], []
        for j, i in enumerate(idx):
            ts, items = drift.observed(rows, i)
            for k in drift.change_candidates(ts, self.cfg.change_candidates):
                bags += [items[:k], items[k:]]
                owner.append(j)
                at.append((ts[k - 1] + ts[k]) // 2)
        return bags, np.asarray(owner, dtype=np.int64), np.asarray(at, dtype=np.int64)

    def migration_times(self, rows: dict[str, list], idx: np.ndarray) -> np.ndarray:
        """Estimated migration time (unix s) of rows idx: the candidate split (candidate_splits) whose before and
        after bags have the most distant latent posteriors; -1 when the history has no day boundary."""
        bags, owner, at = self.candidate_splits(rows, idx)
        out = np.full(len(idx), -1, dtype=np.int64)
        if not bags:
            return out
        m, lv = self.posteriors(bags)
        d = drift.DIVERGENCES[self.cfg.divergence](m[0::2], lv[0::2], m[1::2], lv[1::2])
        best = np.full(len(idx), -np.inf)
        for o, t, v in zip(owner, at, d):
            if v > best[o]:
                best[o], out[o] = v, t
        return out


def flag_score(scored: dict) -> str:
    return next(name for name in SCORES if scored[name] is not None)


@dataclass(frozen=True)
class FlagRule:
    """How a scored user becomes `migrated`: score > threshold, where score is the first available of SCORES (the
    latent one a z-score with latent_stats), itself z-scored with z_stats when the threshold is a z
    (migration.threshold_z: data without truth)."""
    score: str
    threshold: float
    chosen_on: str  # "validation F1" (the fitting users' drift_valid rows) | "migration.threshold_z"
    latent_stats: tuple[float, float] | None = None  # (mean, std) of the latent divergence over the test users
    z_stats: tuple[float, float] | None = None
    valid_f1: float | None = None  # F1 on the fitting users' drift_valid rows
    n_fit_users: int | None = None  # the fitting users (drift.fitting_users) with events in both windows

    def flags(self, scored: dict) -> np.ndarray:
        v = scored[self.score]
        return (v if self.z_stats is None else drift.zscore(v, self.z_stats)) > self.threshold

    def record(self) -> dict:
        out = {"value": self.threshold, "chosen_on": self.chosen_on}
        fitted = {"valid_f1": self.valid_f1, "n_fit_users": self.n_fit_users}
        return out | (fitted if self.chosen_on == "validation F1" else {})


def fit_rule(scorer: DriftScorer, test: dict, cfg: MigrationConfig, truth: dict | None,
             valid_rows: dict[str, list] | None) -> FlagRule:
    """The flag rule for scored test rows (`test`: DriftScorer.score, all users or a sample): the threshold with the
    best F1 on the fitting users' (drift.fitting_users) valid drift rows when there is truth, else
    migration.threshold_z on the flag score's z-score. The held-out users' labels are never read here."""
    name = flag_score(test)
    latent = drift.moments(test["latent_divergence"]) if test["latent_divergence"] is not None else None
    if truth is not None and valid_rows is not None:
        valid = scorer.score(valid_rows)
        rows = valid["windows"].rows
        fit = drift.fitting_users([valid_rows["user_id"][i] for i in rows])
        y = labels(valid_rows, rows[fit], truth)
        if len(y):
            threshold, f1 = drift.best_threshold(valid[name][fit], y)
            return FlagRule(name, threshold, "validation F1", latent, None, f1, int(len(y)))
    return FlagRule(name, cfg.threshold_z, "migration.threshold_z", latent, drift.moments(test[name]))


def category_paths(rows: dict[str, list], scored: dict, flagged: np.ndarray, item_category: np.ndarray,
                   names: list, top: int) -> list[dict]:
    """The most frequent (dominant category early -> dominant category recent) among flagged users, changes only."""
    w, paths = scored["windows"], Counter()
    for j in np.flatnonzero(flagged):
        before = drift.category_distribution(w.early[j], item_category)
        after = drift.category_distribution(w.recent[j], item_category)
        if before and after:
            a, b = max(before, key=before.get), max(after, key=after.get)
            if a != b:
                paths[(a, b)] += 1
    return [{"from": names[a], "to": names[b], "users": n} for (a, b), n in paths.most_common(top)]


def held_out_metrics(scorer: DriftScorer, rows: dict[str, list], scored: dict, flagged: np.ndarray,
                      truth: dict[str, int | None]) -> dict:
    """Against the planted truth, over the held-out users (not drift.fitting_users) among the scored rows only,
    for every score alike: n_held_out, n_migrated, auc per score; the flag's n_flagged_held_out, precision, recall,
    f1; time_within_7d of its true positives (with a latent model) and n_true_positives."""
    idx = scored["windows"].rows
    held = ~drift.fitting_users([rows["user_id"][i] for i in idx])
    y = labels(rows, idx[held], truth)
    out = {"n_held_out": int(held.sum()), "n_migrated": int(y.sum()),
           "auc": {s: (auc(scored[s][held], y) if scored[s] is not None and 0 < y.sum() < len(y) else None)
                   for s in SCORES}}
    if not len(y):
        return out
    f = flagged[held]
    tp = f & (y == 1)
    out |= {"n_flagged_held_out": int(f.sum()), "precision": float(tp.sum() / max(f.sum(), 1)),
            "recall": float(tp.sum() / max(y.sum(), 1)), "f1": float(2 * tp.sum() / max(f.sum() + y.sum(), 1))}
    if scorer.latent is not None and tp.any():
        hits = idx[held][tp]
        est = scorer.migration_times(rows, hits)
        planted = np.array([truth[rows["user_id"][i]] for i in hits])
        out["time_within_7d"] = float((np.abs(est - planted) <= 7 * drift.DAY_S).mean())
        out["n_true_positives"] = int(tp.sum())
    return out


def migration_metrics(data_dir: str | Path, cfg: MigrationConfig, item_category: np.ndarray, category_names: list,
                      latent=None, sequence=None, batch_size: int = 512) -> tuple[dict | None, set[str]]:
    """(metrics.json["migration"], the pseudonyms of the test users flagged as migrated, both halves); (None,
    empty) when the data has no drift rows (an ETL of an older version)."""
    if not (Path(data_dir) / "drift_test").is_dir():
        return None, set()
    scorer = DriftScorer(item_category, cfg, latent, sequence, batch_size)
    truth = truth_times(data_dir)
    test_rows = read_drift_split(data_dir, "test")
    test = scorer.score(test_rows)
    rule = fit_rule(scorer, test, cfg, truth, read_drift_split(data_dir, "valid") if truth is not None else None)
    name, flagged = rule.score, rule.flags(test)
    out: dict = {"window_days": cfg.window_days, "divergence": cfg.divergence, "flag_score": name,
                 "n_users": int(len(test["windows"].rows)), "n_flagged": int(flagged.sum()), "auc": None,
                 "time_within_7d": None, "threshold": rule.record()}
    positives = None
    if truth is not None:
        out |= held_out_metrics(scorer, test_rows, test, flagged, truth)
        positives = labels(test_rows, test["windows"].rows, truth)  # the map draws true positives first
    out["latent_map"] = latent_map(scorer, test_rows, test, flagged, positives, truth, seed=0)
    out["paths"] = category_paths(test_rows, test, flagged, item_category, category_names, cfg.top_paths)
    hist, edges = np.histogram(test[name], bins=30) if len(test[name]) else (np.zeros(0), np.zeros(0))
    out["histogram"] = {"score": name, "counts": hist.tolist(), "edges": edges.tolist()}
    return out, {test_rows["user_id"][i] for i in test["windows"].rows[flagged]}
