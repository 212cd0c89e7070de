"""User profiles: what `interest export` writes for each user, computed one batch of shard rows at a time.

A profile is built from the user's test row (history + target: every event the data set holds for the user) and,
when the model has a decay head, the user's decay_test row (history up to the cutoff, with the counts the head
reads). PROFILE_SCHEMA says what each column holds. `ProfileScorer` loads the model itself, so Ray Data actors
(interest.export) construct one each. `interest evaluate` uses the same scorer and weights for metrics.json["tags"]
(tag_ids), with one difference: there the model reads the history alone, without the target that the export
appends (full_history), because the baselines it is compared with (interest.tag_scores) read the history alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from interest import decay_scores
from interest.action_scores import p_next
from interest.migration_profiles import MIGRATION_FIELDS, MigrationProfiler, MigrationSettings
from interest_core import decay
from interest_core.batches import collate
from interest_core.contract import FIRST_ITEM_ID, INTEREST_CATEGORIES
from interest_core.tags import TagLevels, category_mass, category_names, pad_lists, tag_levels, top_tags
from ray_train.models.saved import load_model

_f64, _f32, _i32 = pa.float64(), pa.float32(), pa.int32()
PREDICTED_TAGS = 50  # most likely next-item tags per user and level that enter the tag weights
DECAY_FIELDS = [pa.field(f"p_active_{d}d", _f64) for d in decay_scores.P_ACTIVE_DAYS] + [
    pa.field("expected_days_to_next", _f64), pa.field("half_life_days", _f64),
    pa.field("survival", pa.list_(_f64)), pa.field("churn_risk", _f64)]
LEVEL_TAGS = pa.struct([("level", _i32), ("tags", pa.list_(pa.string())), ("weights", pa.list_(_f64))])
PROFILE_SCHEMA = pa.schema([
    pa.field("user_id", pa.string()),  # pseudonym
    pa.field("n_events", _i32),  # the user's events up to the test target (split=time: the first after the cutoff)
    pa.field("last_event_ts", pa.int64()),  # unix seconds
    pa.field("buy_share", _f64),  # share of buys among the last max_len events (null: the data has no buy type)
    pa.field("embedding", pa.list_(_f32)),  # the model's user embedding after the last event
    pa.field("top_items", pa.list_(_i32)),  # top-K item ids (model vocabulary), seen items included
    pa.field("top_item_ids", pa.list_(pa.string())),  # the same items' catalog ids
    pa.field("top_scores", pa.list_(_f32)),
    pa.field("interest_tags", pa.list_(pa.string())),  # top tags at the deepest catalog level
    pa.field("interest_weights", pa.list_(_f64)),
    pa.field("tags_by_level", pa.list_(LEVEL_TAGS)),  # top tags at every level, level 1 = the coarsest
    pa.field("p_buy_next", _f64),  # P(the next event is a buy), null without a next-action head or buy type
    pa.field("segment", _i32),  # k-means segment of the embedding (null when the export fits none)
    *DECAY_FIELDS,  # the decay head's view as of the cutoff (null without a decay head or a decay_test row)
    *MIGRATION_FIELDS,  # interest migration (null without drift rows or events in both windows)
])


@dataclass(frozen=True)
class ProfileSettings:
    top_k: int
    tags_per_level: int
    tag_half_life_days: float  # the re-engagement list's tags from a decay row's window (data.tag_half_life_days)
    tag_predicted_weight: float
    batch_size: int
    horizon_days: float
    buy_type: int  # 0 = the data has no buy type
    reengage_below: float = 0.5
    hazard_scale: float | None = None  # fitted on decay_valid (decay.fit_hazard_scale); None = no decay outputs
    segmenter: Any = None  # a fitted scikit-learn KMeans (predict) or None
    migration: MigrationSettings | None = None  # fitted on the driver (migration_profiles.fit_settings)


def settings_from(cfg, horizon_days: float, hazard_scale: float | None = None, segmenter: Any = None,
                  **overrides: Any) -> ProfileSettings:
    """ProfileSettings from a run's config (its export section; overrides win, e.g. top_k from --top-k)."""
    e = cfg.export
    kw = dict(top_k=e.top_k, tags_per_level=e.tags_per_level, tag_half_life_days=cfg.data.tag_half_life_days,
              tag_predicted_weight=e.tag_predicted_weight, batch_size=e.batch_size, horizon_days=horizon_days,
              buy_type=cfg.data.buy_event_type or 0, reengage_below=e.reengage_below, hazard_scale=hazard_scale,
              segmenter=segmenter)
    return ProfileSettings(**(kw | overrides))


def full_history(rows: dict[str, list], max_len: int) -> dict[str, list]:
    """Test rows -> the user's last max_len events with the target appended (items, event_types, ts, dt)."""
    pairs = {"items": "target_item", "event_types": "target_event_type", "ts": "target_ts"}
    full = {k: [(list(h) + [t])[-max_len:] for h, t in zip(rows[k], rows[tk])] for k, tk in pairs.items()}
    full["dt"] = [(list(d) + [t - (ts[-1] if len(ts) else t)])[-max_len:]
                  for d, t, ts in zip(rows["dt"], rows["target_ts"], rows["ts"])]
    return full


class ProfileScorer:
    """Profiles of batches of test rows. Holds the model, the item catalogue's ids and tag levels."""

    def __init__(self, run_dir: str | Path, data_dir: str | Path, settings: ProfileSettings):
        self.model, meta = load_model(run_dir)
        self.s = settings
        num_items = meta["model_args"]["num_items"]
        items = pq.read_table(Path(data_dir) / "items", columns=["item_idx", "item_id", "category_idx"]).to_pydict()
        cats = pq.read_table(Path(data_dir) / "vocab" / "categories", columns=["category", "category_idx"])
        self.item_ids = np.array([""] * num_items, dtype=object)
        self.item_ids[np.asarray(items["item_idx"])] = items["item_id"]
        self.levels: TagLevels = tag_levels(category_names(*cats.to_pydict().values()),
                                            np.asarray(items["item_idx"]), np.asarray(items["category_idx"]),
                                            num_items)
        self._item_tag = torch.from_numpy(self.levels.item_tag)  # (levels, V) for category_mass
        self.max_len = self.model.args.max_len
        self.migration = MigrationProfiler(data_dir, settings.migration, self.model, settings.batch_size) \
            if settings.migration is not None else None

    @torch.no_grad()
    def embed(self, rows: dict[str, list]) -> np.ndarray:
        """(B, D) user embeddings of test rows (the k-means fitting sample)."""
        return self.model.user_embedding(collate(full_history(rows, self.max_len), self.max_len)).numpy()

    @torch.no_grad()
    def profiles(self, rows: dict[str, list], decay_rows: dict[str, list] | None = None,
                 drift_rows: dict[str, list] | None = None) -> pa.Table:
        """Test rows (columns as read) -> PROFILE_SCHEMA rows, in the same order. decay_rows / drift_rows:
        decay_test / drift_test rows of (at least) the same users, any order; users without one get null decay /
        migration fields."""
        full = full_history(rows, self.max_len)
        batch = collate(full, self.max_len)
        hidden = self.model.encode(batch)
        emb = hidden[:, -1]
        scores = self.model.scores(emb)
        k = min(self.s.top_k, scores.shape[1] - FIRST_ITEM_ID)
        top_v, top_i = scores.topk(k, dim=1)
        top_i_np = top_i.numpy()
        p_buy = p_next(self.model, hidden, batch, self.s.buy_type)
        n = len(rows["user_id"])
        dec = self._decay(rows["user_id"], decay_rows)
        tags = self.tags(rows, torch.softmax(scores, dim=1), self.s.tag_predicted_weight)
        deepest = tags[-1]
        types = batch["event_types"].numpy()
        buys = ((types == self.s.buy_type).sum(1) / np.maximum((types > 0).sum(1), 1)) if self.s.buy_type else None
        e_np = emb.numpy()
        seg = self.s.segmenter.predict(e_np.astype(self.s.segmenter.cluster_centers_.dtype)) \
            if self.s.segmenter is not None and n else None
        cols = {
            "user_id": rows["user_id"],
            "n_events": pa.array(np.asarray(rows["history_len"]) + 1, _i32),
            "last_event_ts": pa.array(rows["target_ts"], pa.int64()),
            "buy_share": pa.array(buys if buys is not None else [None] * n, _f64),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(e_np.ravel(), _f32), e_np.shape[1]).cast(
                pa.list_(_f32)),
            "top_items": pa.array(top_i_np.astype(np.int32).tolist(), pa.list_(_i32)),
            "top_item_ids": pa.array(self.item_ids[top_i_np].tolist(), pa.list_(pa.string())),
            "top_scores": pa.array(top_v.numpy().tolist(), pa.list_(_f32)),
            "interest_tags": pa.array([t for t, _ in deepest], pa.list_(pa.string())),
            "interest_weights": pa.array([w for _, w in deepest], pa.list_(_f64)),
            "tags_by_level": pa.array([[{"level": lv + 1, "tags": tags[lv][r][0], "weights": tags[lv][r][1]}
                                        for lv in range(len(tags))] for r in range(n)], pa.list_(LEVEL_TAGS)),
            "p_buy_next": pa.array(p_buy if p_buy is not None else [None] * n, _f64),
            "segment": pa.array(seg if seg is not None else [None] * n, _i32),
        }
        mig = self.migration.fields(rows["user_id"], drift_rows) if self.migration is not None else {
            f.name: pa.nulls(n, f.type) for f in MIGRATION_FIELDS}
        return pa.table(cols | dec | mig, schema=PROFILE_SCHEMA)

    def tags(self, rows: dict[str, list], probs: torch.Tensor | None, beta: float
             ) -> list[list[tuple[list[str], list[float]]]]:
        """Per level (coarsest first), per user: (tag names, weights) of test rows; probs (B, V) the model's
        next-item distribution (None: the history alone)."""
        out = []
        for names, (t, w) in zip(self.levels.names, self.tag_ids_of(rows, probs, beta)):
            out.append([([names[x] for x in tr if x > 0], [float(v) for x, v in zip(tr, wr) if x > 0])
                        for tr, wr in zip(t, w)])
        return out

    def tag_ids_of(self, rows: dict[str, list], probs: torch.Tensor | None, beta: float, top: int | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level: (tag ids (B, top), -1 = none; weights), interest_core.tags (module docstring); top defaults
        to export.tags_per_level."""
        cats = pad_lists(rows["interest_categories"], INTEREST_CATEGORIES, np.int64)  # (B, M) category ids
        shares = pad_lists(rows["interest_weights"], INTEREST_CATEGORIES, np.float64)  # (B, M)
        history_weight = 1.0 - beta if probs is not None and beta > 0 else 1.0
        levels = []
        for level in range(self.levels.depth):
            sources = [(self.levels.category_tag[level][cats], history_weight * shares)]
            if probs is not None and beta > 0:
                t, m = category_mass(probs, self._item_tag[level], PREDICTED_TAGS)
                sources.append((t, beta * m))
            levels.append(top_tags(sources, top or self.s.tags_per_level))
        return levels

    @torch.no_grad()
    def tag_ids(self, rows: dict[str, list], beta: float | None = None, top: int | None = None
                ) -> list[np.ndarray]:
        """Per level, (B, top) tag ids of test rows (-1 = none), for the tag metrics; beta overrides
        export.tag_predicted_weight, top export.tags_per_level. The model reads the rows' history alone, not
        full_history: an evaluation gives every scorer the same events, and the history part and the baselines
        (interest.tag_scores) have no target event. The export's profiles() use every event up to the target."""
        beta = self.s.tag_predicted_weight if beta is None else beta
        probs = None
        if beta > 0:
            probs = torch.softmax(self.model.score_all(collate(rows, self.max_len)), dim=1)
        return [t for t, _ in self.tag_ids_of(rows, probs, beta, top)]

    @torch.no_grad()
    def _decay(self, user_ids: list[str], decay_rows: dict[str, list] | None) -> dict[str, pa.Array]:
        """The decay fields (DECAY_FIELDS) of user_ids from their decay_test rows (null where there is none)."""
        n = len(user_ids)
        null = {f.name: pa.nulls(n, f.type) for f in DECAY_FIELDS}
        if decay_rows is None or self.s.hazard_scale is None or "decay" not in self.model.heads:
            return null
        where = {u: i for i, u in enumerate(decay_rows["user_id"])}
        at = [where.get(u) for u in user_ids]
        have = [i for i in at if i is not None]
        if not have:
            return null
        sub = {k: [decay_rows[k][i] for i in have] for k in decay_rows}
        h = decay.scale_hazards(self.model.decay_hazards(collate(sub, self.max_len)).numpy(), self.s.hazard_scale)
        a = decay.elapsed_s(sub)
        outs = decay_scores.user_outputs(h, a)
        outs["churn_risk"] = 1 - decay.p_active_within(h, a, self.s.horizon_days * decay.DAY_S)
        pos = np.cumsum([i is not None for i in at]) - 1
        cols = {}
        for f in DECAY_FIELDS:
            v = outs[f.name]
            if f.name == "survival":
                cols[f.name] = pa.array([None if i is None else v[pos[r]].tolist() for r, i in enumerate(at)], f.type)
            else:
                cols[f.name] = pa.array([None if i is None or not np.isfinite(v[pos[r]]) else float(v[pos[r]])
                                         for r, i in enumerate(at)], f.type)
        return cols
