"""The `data` section of the config: what the ETL (`interest etl`, spark_jobs/) reads; a run inherits it from the
manifest, so the checkpoint records what built its shards."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_len: int = Field(50, ge=2, le=4096)
    """Items per training window (the model's context length)."""
    stride: int | None = Field(None, ge=1)
    """Step between training windows of one long history; every target then sees at least max_len - stride + 1
    events of left context (interest_core/windows.py). None = max(1, max_len // 5)."""
    split: Literal["leave-one-out", "time"] = "leave-one-out"
    """How targets are held out: per-user last events, or a global time cutoff."""
    cutoff: str | None = None
    """ISO date or time (UTC unless it carries an offset) for split=time: events after it are held out for test;
    events in (cutoff - horizon, cutoff] for validation."""
    horizon_days: float = Field(7.0, gt=0)
    """split=time: the decay label is "any event in (cutoff, cutoff + horizon]" (test) and "(cutoff - horizon,
    cutoff]" (validation); the validation window is this long too."""
    min_item_count: int = Field(1, ge=1)
    """Items seen fewer times than this share the OOV id."""
    event_types: list[str] = ["view", "click", "cart", "fav", "buy"]
    """Accepted event types after ingest mapping; anything else is quarantined (unknown_event_type)."""
    ts_min: str = "1995-01-01"
    """Earliest plausible event time; older rows are quarantined (ts_out_of_range)."""
    max_future_seconds: int = Field(86400, ge=0)
    """Rows later than now + this are quarantined (ts_in_future)."""
    now: str | None = None
    """The ETL's "now" for ts_in_future (ISO date or time, UTC unless it has an offset); None = the time the input
    was last modified (its newest file), so a rerun on the same files quarantines the same rows."""
    max_id_length: int = Field(256, ge=1)
    """Longer user/item ids are quarantined (id_too_long)."""
    max_events_per_user: int | None = Field(100_000, ge=1)
    """A user's events beyond their most recent N are quarantined (reason user_event_cap; they do not count toward
    max_quarantine_fraction): a bot with millions of events would otherwise put its whole history in one task and
    one training user. None = no cap."""
    max_quarantine_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """The job fails when more than this fraction of input rows is quarantined."""
    shuffle_partitions: int = Field(8, ge=1)
    """spark.sql.shuffle.partitions for the ETL (AQE coalesces further)."""
    num_files: int = Field(4, ge=1)
    """Parquet files per split; a multiple of typical world sizes keeps per-rank reads even."""
    row_group_mb: int = Field(16, ge=1)
    """Parquet row-group size in MB (streaming granularity: one row group is the smallest read)."""
    broadcast_max_items: int = Field(2_000_000, ge=0)
    """Item vocabularies up to this size are broadcast to index events without a second shuffle."""
    spark_driver_memory: str = "4g"
    """Driver JVM heap for local runs (spark-submit sets its own)."""
    spark_offheap_memory: str = "2g"
    """Off-heap Tungsten memory for local runs ("0" = on-heap only): large sorts and aggregations then spill
    instead of failing with "Java heap space" on a small heap. On a cluster, set spark.memory.offHeap.* yourself."""
    graph_window: int = Field(5, ge=1, le=20)
    """Item co-occurrence: pair each event with the next N events of the same user."""
    graph_max_gap_hours: float = Field(24.0, gt=0)
    """Item co-occurrence: ignore pairs further apart than this."""
    graph_top_k: int = Field(20, ge=1)
    """Neighbours kept per item."""
    tag_half_life_days: float = Field(30.0, gt=0)
    """Half-life of an event's weight in the whole-history interest categories of valid/test rows (the interest
    tags' history part; chosen on the synthetic validation users, README: Profiles, segments and serving)."""
    drift_max_events: int = Field(512, ge=2)
    """Most recent events per user in drift_valid/ and drift_test/, the history interest migration reads."""
    cold_user_max_events: int = Field(3, ge=1)
    """Users whose history has at most this many events form the cold-user segment."""
    catalog_items: bool = False
    """Catalog rows whose item has no event join the item vocabulary (ids after every item with events, by item id;
    count and train_count 0), so a model that reads item features (model.item_features) ranks brand-new items by
    their content alone. Off by default: an ID-only model cannot rank them and would only carry their rows."""
    user_feature_buckets: int = Field(10_000, ge=1)
    """User side features (`interest etl --users FILE`): each feature value is hashed to one of this many embedding
    rows (interest_core/user_features.py); collisions are rare while distinct values stay far below it."""
    cold_items: float = Field(0.0, ge=0.0, lt=1.0)
    """Zero-shot protocol (`interest etl --cold-items F`): this fraction of the item vocabulary (chosen by a hash
    of the item id, so reruns hold out the same items) loses every training event: its items keep their ids, their
    catalog rows and their place in valid/test histories and targets, but no training window, training count or
    graph edge. Test rows whose target is such an item form the cold_items segment. 0 = off."""

    baskets: bool | None = None
    """Leave-one-out by basket: a user's events that share a time or a session id (an invoice) form a basket, never
    divided between a target and its input. The test target is the last event of the user's last basket, predicted
    from the earlier baskets only; the validation target is the last event of the basket before, likewise; training
    reads the baskets before those. Predicting an invoice's line from its other lines is basket completion, not
    next-item prediction. None = the input format's default (the manifest records the value used): on for
    online-retail, off for the others (MovieLens-100K's public protocol splits equal times). split=time splits by
    time, so a basket is divided only when its events straddle the cutoff."""
    cold_users: float = Field(0.0, ge=0.0, lt=1.0)
    """New-user protocol (`interest etl --cold-users F`, split=leave-one-out): this fraction of users (chosen by a
    hash of the pseudonym) get no training window and no validation row; their test row keeps only their first
    1..cold_user_max_events events (a hash picks how many) and the event after them as target: users the model never
    trained on, in the cold_users segment. 0 = off."""

    @field_validator("spark_driver_memory", "spark_offheap_memory", mode="before")
    @classmethod
    def _memory_text(cls, v: Any, info: ValidationInfo) -> Any:
        """JVM sizes as Spark reads them (512m, 4g, 0); --set data.spark_offheap_memory=0 parses as a number."""
        text = str(v).strip().lower() if isinstance(v, (int, str)) and not isinstance(v, bool) else v
        if isinstance(text, str) and not re.fullmatch(r"\d+[kmgt]?b?", text):
            raise ValueError(f"{info.field_name}={v!r} is not a JVM size; e.g. 512m, 4g or 0")
        return text

    @field_validator("cutoff", "now", mode="before")
    @classmethod
    def _cutoff_iso(cls, v: Any, info: ValidationInfo) -> Any:
        """YAML and --set turn 2024-03-31 into a date: keep the ISO text; refuse what does not parse."""
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        if isinstance(v, str):
            try:
                dt.datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(f"{info.field_name} {v!r} is not an ISO date or time; e.g. 2024-03-31 or "
                                 "2024-03-31T23:59:59+00:00") from None
        return v

    @model_validator(mode="after")
    def _cold_users_need_leave_one_out(self) -> "DataConfig":
        if self.cold_users > 0 and self.split != "leave-one-out":
            raise ValueError("data.cold_users (--cold-users) holds users out of a leave-one-out split; with "
                             "data.split=time every user's test events already come after the cutoff")
        return self

    @model_validator(mode="after")
    def _cold_users_cut_by_event(self) -> "DataConfig":
        if self.cold_users > 0 and self.baskets:
            raise ValueError("data.cold_users (--cold-users) cuts a held-out user's history after any event, which "
                             "can divide a basket; use it with data.baskets=false")
        return self

    @model_validator(mode="after")
    def _time_split_needs_cutoff(self) -> "DataConfig":
        if self.split == "time" and self.cutoff is None:
            raise ValueError("data.split=time needs data.cutoff; e.g. --split time --cutoff 2024-03-31 "
                             "--horizon-days 30")
        return self

    @property
    def now_ts(self) -> int | None:
        """data.now in unix seconds, None when unset."""
        return _iso_ts(self.now)

    @property
    def cutoff_ts(self) -> int | None:
        """The cutoff in unix seconds (a time without an offset is UTC; a date is its midnight UTC)."""
        return _iso_ts(self.cutoff)

    @property
    def buy_event_type(self) -> int | None:
        """Event-type id of purchases (ids count from 1 in event_types' order), None when "buy" is not a type."""
        return self.event_types.index("buy") + 1 if "buy" in self.event_types else None

    @property
    def horizon_s(self) -> int:
        return int(round(self.horizon_days * 86400))

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else max(1, self.max_len // 5)


def _iso_ts(text: str | None) -> int | None:
    """ISO date or time -> unix seconds (a time without an offset is UTC; a date is its midnight UTC)."""
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text)
    return int((t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp())
