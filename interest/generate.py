"""Deterministic synthetic e-commerce events with planted structure (``interest generate``).

The data set is built so that each model in the project has something real to find, and the planted
truth is written next to the events:

* items live in a two-level category tree; popularity is Zipf-like inside each sub-category;
* each user has 2-3 latent interest sub-categories (Dirichlet weights) and a sequential habit
  (re-visit the previous item or one next to it), so a next-item model beats global popularity;
* a fraction of the users migrate to disjoint interests at a random time of their active span;
* activity is a sequence of sessions with per-user (gamma) rates and a churn hazard after each session
  that falls with the purchases so far; the end of the window censors everyone else;
* a session is a funnel (every event is a view; view -> cart -> buy, view -> fav) and sessions start
  more often in the evening (UTC);
* cold users (<= 3 events) and cold items (available only in the last days, with boosted popularity).

Output in ``out_dir``: ``events/part-NNNNN.parquet`` (one file per chunk of users, rows sorted by
user_id, ts), ``items.parquet``, ``ground_truth.parquet`` and ``generator.json`` (parameters, planted
rates, calibration and actual counts). Memory is bounded by one chunk of users, and all randomness
comes from numpy Generators seeded with (seed, stream, chunk), so equal arguments give equal bytes.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EVENT_TYPES = ("view", "cart", "fav", "buy")
VIEW, CART, FAV, BUY = range(len(EVENT_TYPES))
COLD_USER_MAX_EVENTS = 3
"""Users with at most this many events are cold (matches data.cold_user_max_events)."""

SECONDS_PER_DAY = 86_400
# Views fall within the first 90 minutes of a session and the cart/buy/fav delays add at most 20 more,
# so no session lasts as long as SESSION_SPAN_S. Session starts are kept that far apart (sessions never overlap)
# and that far before the window end (no event falls after it).
VIEW_SPAN_S = 5_400
CART_DELAY_S = (5, 300)
BUY_DELAY_S = (10, 900)
FAV_DELAY_S = (1, 60)
SESSION_SPAN_S = 7_200
WARM_ITEM_HISTORY_DAYS = 365
"""Items that are not cold became available up to this many days before the window."""

PILOT_USERS = 20_000
CALIBRATION_STEPS = 12
EVENTS_TOLERANCE = 0.15
"""Relative distance from the requested number of events beyond which generate() warns."""
SCALE_RANGE = (1 / 64, 64.0)
"""Bisection range of the factor on session rates and (views per session - 1)."""

STREAM_CATALOG, STREAM_SESSIONS, STREAM_EVENTS = range(3)
# Times are whole seconds, but Parquet has no seconds unit (pyarrow would coerce timestamp[s] to ms
# on write anyway), so the declared type is the one readers get back.
TIMESTAMP = pa.timestamp("ms", tz="UTC")
# Fixed writer settings: together with seeded randomness they make the files byte-identical per arguments.
PARQUET_WRITER = {"compression": "zstd", "compression_level": 3}
ROW_GROUP_ROWS = 1 << 17

EVENTS_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("item_id", pa.string()),
    ("event_type", pa.string()),
    ("ts", TIMESTAMP),
    ("session_id", pa.string()),
    ("quantity", pa.int32()),
    ("price", pa.float64()),
])
ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("category", pa.string()),
    ("brand", pa.string()),
    ("price", pa.float64()),
    ("title", pa.string()),
    ("first_ts", TIMESTAMP),
])
GROUND_TRUTH_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("interests", pa.list_(pa.string())),
    ("migrated", pa.bool_()),
    ("migration_ts", TIMESTAMP),
    ("interests_after", pa.list_(pa.string())),
    ("churned", pa.bool_()),
    ("churn_ts", TIMESTAMP),
    ("is_cold", pa.bool_()),
    ("n_events", pa.int64()),
])


@dataclass(frozen=True)
class Rates:
    """What the generator plants; every field is recorded in generator.json."""

    zipf_exponent: float = 1.0
    """Item popularity inside a sub-category is proportional to 1 / rank**zipf_exponent."""
    subcategories_per_category: tuple[int, int] = (3, 6)
    """Range of sub-categories under each of the ~sqrt(items)/2 top categories."""
    brands_per_category: int = 4
    vocabulary_per_subcategory: int = 8
    """Pseudo-words per sub-category; titles are brand + 3-6 of them."""
    title_words: tuple[int, int] = (3, 6)
    price_log_mean: float = 3.0
    price_log_sd_category: float = 0.8
    """Spread of the sub-categories' log-price means."""
    price_log_sd_item: float = 0.4
    """Spread of log prices within a sub-category."""

    interests_per_user: tuple[int, int] = (2, 3)
    interest_concentration: float = 1.0
    """Dirichlet concentration of a user's weights over their interest sub-categories."""
    p_interest: float = 0.85
    """A fresh view picks a sub-category from the user's interests with this probability, else any."""
    p_continue: float = 0.3
    """A view continues from the previous view's item (re-visit or neighbour) instead of a fresh pick."""
    p_revisit: float = 0.5
    """Share of continuations that re-visit the same item; the rest step to a neighbour."""
    neighbour_max_offset: int = 2
    """Neighbours are up to this many places away in the sub-category's item-id order."""
    migration_fraction: float = 0.2
    """Share of the warm (non-cold) users whose interests change to disjoint sub-categories."""

    session_rate_mean: float = 0.25
    """Mean sessions per day before calibration; per-user rates are gamma distributed."""
    session_rate_shape: float = 1.5
    """Gamma shape of the per-user session rate (smaller = more heterogeneous)."""
    views_per_session: float = 5.0
    """Mean views per session before calibration (geometric); a warm user's first session has 3 more."""
    view_gap_median_s: float = 30.0
    """Median seconds between views of a session (lognormal, sigma 1)."""
    churn_base_hazard: float = 0.08
    """Churn probability after a session of a user without purchases."""
    churn_buy_decay: float = 0.3
    """hazard = churn_base_hazard * exp(-churn_buy_decay * purchases so far)."""
    hour_weights: tuple[float, ...] = (
        0.35, 0.25, 0.2, 0.2, 0.25, 0.35, 0.55, 0.75, 0.9, 1.0, 1.05, 1.1,
        1.15, 1.1, 1.05, 1.05, 1.1, 1.25, 1.5, 1.8, 2.0, 1.9, 1.4, 0.8,
    )
    """Relative session-start intensity per UTC hour (evening peak, night trough)."""

    p_cart: float = 0.08
    """A view is followed by a cart of the same item with this probability."""
    p_buy: float = 0.35
    """A cart is followed by a buy of the same item with this probability."""
    p_fav: float = 0.03
    quantity_p: float = 0.7
    """Bought quantity is geometric with this success probability (1 most of the time)."""

    cold_user_fraction: float = 0.1
    """Users with a single session of 1-3 events."""
    cold_item_fraction: float = 0.05
    """Items that appear only in the last cold_item_days of the window."""
    cold_item_days: float = 5.0
    cold_item_boost: float = 4.0
    """Popularity multiplier of cold items, so that they are seen in their short life."""

    def validate(self) -> None:
        for name in ("p_interest", "p_continue", "p_revisit", "migration_fraction", "churn_base_hazard",
                     "p_cart", "p_buy", "p_fav", "cold_user_fraction", "cold_item_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Rates.{name}={getattr(self, name)} must be a probability in [0, 1]")
        if not 0.0 < self.quantity_p <= 1.0:
            raise ValueError(f"Rates.quantity_p={self.quantity_p} must be in (0, 1]")
        if len(self.hour_weights) != 24 or min(self.hour_weights) <= 0:
            raise ValueError("Rates.hour_weights needs 24 positive weights, one per UTC hour")
        if not 1 <= self.interests_per_user[0] <= self.interests_per_user[1]:
            raise ValueError(f"Rates.interests_per_user={self.interests_per_user} must be (min, max) with 1 <= min <= max")
        if not 1 <= self.title_words[0] <= self.title_words[1] <= self.vocabulary_per_subcategory:
            raise ValueError("Rates.title_words must be (min, max) with max <= vocabulary_per_subcategory")
        if not 1 <= self.subcategories_per_category[0] <= self.subcategories_per_category[1]:
            raise ValueError("Rates.subcategories_per_category must be (min, max) with 1 <= min <= max")
        positive = ("zipf_exponent", "interest_concentration", "session_rate_mean", "session_rate_shape",
                    "view_gap_median_s", "cold_item_boost", "cold_item_days", "brands_per_category")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"Rates.{name}={getattr(self, name)} must be positive")
        if self.views_per_session < 1 or self.neighbour_max_offset < 1:
            raise ValueError("Rates.views_per_session and Rates.neighbour_max_offset must be >= 1")


class _TimeWarp:
    """Maps real time (days) to 'activity time' whose rate follows the hour-of-day weights.

    Exponential gaps drawn in activity time and mapped back give session starts with the daily
    pattern, while keeping them monotone and the mean number of sessions per day unchanged.
    """

    def __init__(self, hour_weights: tuple[float, ...]):
        w = np.asarray(hour_weights, dtype=np.float64)
        self._real = np.arange(25) / 24.0
        self._activity = np.concatenate([[0.0], np.cumsum(w) / w.sum()])

    def forward(self, days: np.ndarray) -> np.ndarray:
        whole = np.floor(days)
        return whole + np.interp(days - whole, self._real, self._activity)

    def inverse(self, activity: np.ndarray) -> np.ndarray:
        whole = np.floor(activity)
        return whole + np.interp(activity - whole, self._activity, self._real)


@dataclass
class _Catalog:
    """Items in a sub-category-major layout of 'slots' that makes sampling vectorised.

    The items of sub-category s occupy slots sub_start[s]:sub_start[s+1], in item-id order (which
    defines neighbours). cdf_* hold s + the cumulative popularity share within s, a monotone array,
    so searchsorted(cdf, s + u) draws an item of s by popularity for a whole vector of events.
    """

    sub_names: pa.Array
    n_top: int
    sub_start: np.ndarray
    slot_item: np.ndarray
    slot_sub: np.ndarray
    cdf_all: np.ndarray
    cdf_warm: np.ndarray
    """As cdf_all with cold items at zero weight: for draws before a cold item exists."""
    first_ts: np.ndarray
    """Per item, seconds since the window start (negative: available before the window)."""
    cold: np.ndarray
    price: np.ndarray
    item_ids: pa.Array
    table: pa.Table

    @property
    def n_sub(self) -> int:
        return len(self.sub_names)

    @staticmethod
    def draw(cdf: np.ndarray, sub: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.searchsorted(cdf, sub + u, side="right")


@dataclass
class _Sessions:
    """One row per session, sorted by (user, number); plus per-user flags of the chunk."""

    user: np.ndarray
    number: np.ndarray
    start: np.ndarray
    """Seconds since the window start."""
    views: np.ndarray
    carts: np.ndarray
    buys: np.ndarray
    favs: np.ndarray
    cold: np.ndarray
    churned: np.ndarray

    @property
    def n_events(self) -> int:
        return int(self.views.sum() + self.carts.sum() + self.buys.sum() + self.favs.sum())


@dataclass
class _Events:
    """Events of a chunk before item assignment; rows [0, n_views) are the views in time order per user."""

    user: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    view: np.ndarray
    """The view each row follows (for a view: itself); it supplies the item."""
    session: np.ndarray
    quantity: np.ndarray
    n_views: int


@dataclass
class _Interests:
    subs: np.ndarray
    """(users, 2, max interests): [:, 0] before and [:, 1] after migration; -1 = unused."""
    cum: np.ndarray
    """Cumulative Dirichlet weights matching subs, 1.0 from the last used column on."""
    migrated: np.ndarray


# ---------------------------------------------------------------------------------------------- catalogue

_SYLLABLES = np.array([c + v for c in "bdfgklmnprstvz" for v in "aeiou"])


def _pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    n_syllables = rng.integers(2, 4, n)
    syllables = _SYLLABLES[rng.integers(0, len(_SYLLABLES), (n, 3))]
    return ["".join(row[:k]) for row, k in zip(syllables.tolist(), n_syllables.tolist())]


def _sub_cdf(weight: np.ndarray, slot_sub: np.ndarray, sub_start: np.ndarray) -> np.ndarray:
    cum = np.cumsum(weight)
    before = np.concatenate([[0.0], cum])[sub_start[:-1]]
    # The last slot of each sub-category gets exactly s + 1 ((x - b) / (x - b)), so draws never spill over.
    total = cum[sub_start[1:] - 1] - before
    return slot_sub + (cum - before[slot_sub]) / total[slot_sub]


def _item_titles(rng: np.random.Generator, item_sub: np.ndarray, brands: list[str], n_sub: int,
                 r: Rates) -> list[str]:
    size = r.vocabulary_per_subcategory
    vocabulary = np.array(_pseudo_words(rng, n_sub * size), dtype=object).reshape(n_sub, size)
    n_words = rng.integers(r.title_words[0], r.title_words[1] + 1, len(item_sub))
    # Distinct words per title: the first n of a random permutation of the sub-category's vocabulary.
    picks = np.argsort(rng.random((len(item_sub), size)), axis=1)[:, : r.title_words[1]]
    words = vocabulary[item_sub[:, None], picks].tolist()
    return [" ".join([brand, *row[:k]]) for brand, row, k in zip(brands, words, n_words.tolist())]


def _build_catalog(rng: np.random.Generator, n_items: int, days: float, t0: int, r: Rates) -> _Catalog:
    n_top = max(2, round(math.sqrt(n_items) / 2))
    subs_per_top = rng.integers(r.subcategories_per_category[0], r.subcategories_per_category[1] + 1, n_top)
    n_sub = int(subs_per_top.sum())
    if n_sub > n_items or n_sub < 2 * r.interests_per_user[1]:
        raise ValueError(f"items={n_items} gives {n_sub} sub-categories; need at least "
                         f"{2 * r.interests_per_user[1]} and at most one per item (try --items 1000)")
    sub_top = np.repeat(np.arange(n_top), subs_per_top)
    width_top, width_sub = max(2, len(str(n_top - 1))), max(2, len(str(n_sub - 1)))
    sub_names = pa.array([f"Cat{t:0{width_top}d}/Sub{s:0{width_sub}d}" for s, t in enumerate(sub_top.tolist())])

    # Every sub-category gets one item; the others go to sub-categories of uneven (lognormal) size.
    size = rng.lognormal(0.0, 0.5, n_sub)
    extra = rng.choice(n_sub, n_items - n_sub, p=size / size.sum())
    item_sub = rng.permutation(np.concatenate([np.arange(n_sub), extra]))
    slot_item = np.argsort(item_sub, kind="stable")
    slot_sub = item_sub[slot_item]
    sub_start = np.concatenate([[0], np.cumsum(np.bincount(item_sub, minlength=n_sub))])

    # Popularity rank within the sub-category is random, i.e. unrelated to the id order of neighbours.
    order = np.argsort((slot_sub.astype(np.int64) << 32) | rng.integers(0, 1 << 32, n_items))
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items) - sub_start[slot_sub]
    # The most popular item of each sub-category stays warm, so cdf_warm is defined everywhere.
    candidates = np.flatnonzero(rank > 0)
    n_cold = min(round(r.cold_item_fraction * n_items), len(candidates))
    slot_cold = np.zeros(n_items, dtype=bool)
    slot_cold[rng.choice(candidates, n_cold, replace=False)] = True
    weight = (rank + 1.0) ** -r.zipf_exponent

    cold = np.zeros(n_items, dtype=bool)
    cold[slot_item[slot_cold]] = True
    end = round(days * SECONDS_PER_DAY)
    cold_from = max(0, end - round(r.cold_item_days * SECONDS_PER_DAY))
    first_ts = np.where(
        cold,
        rng.integers(cold_from, max(cold_from + 1, end - SESSION_SPAN_S), n_items),
        -rng.integers(0, WARM_ITEM_HISTORY_DAYS * SECONDS_PER_DAY, n_items),
    )

    log_mean = rng.normal(r.price_log_mean, r.price_log_sd_category, n_sub)
    price = np.maximum(np.round(np.exp(log_mean[item_sub] + rng.normal(0.0, r.price_log_sd_item, n_items)), 2), 0.01)
    brand_names = np.array([w.capitalize() for w in _pseudo_words(rng, n_top * r.brands_per_category)], dtype=object)
    brand = brand_names[sub_top[item_sub] * r.brands_per_category + rng.integers(0, r.brands_per_category, n_items)]
    titles = _item_titles(rng, item_sub, brand.tolist(), n_sub, r)

    width = max(5, len(str(n_items - 1)))
    item_ids = pa.array([f"i{i:0{width}d}" for i in range(n_items)])
    table = pa.table({
        "item_id": item_ids,
        "category": sub_names.take(pa.array(item_sub)),
        "brand": pa.array(brand.tolist(), pa.string()),
        "price": pa.array(price),
        "title": pa.array(titles, pa.string()),
        "first_ts": _timestamps(t0 + first_ts),
    }, schema=ITEMS_SCHEMA)
    return _Catalog(
        sub_names=sub_names, n_top=n_top, sub_start=sub_start, slot_item=slot_item, slot_sub=slot_sub,
        cdf_all=_sub_cdf(np.where(slot_cold, weight * r.cold_item_boost, weight), slot_sub, sub_start),
        cdf_warm=_sub_cdf(np.where(slot_cold, 0.0, weight), slot_sub, sub_start),
        first_ts=first_ts, cold=cold, price=price, item_ids=item_ids, table=table,
    )


# ---------------------------------------------------------------------------------------------- activity

def _session_rng(seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM_SESSIONS, chunk])


def _cap_cold(cold: np.ndarray, views: np.ndarray, carts: np.ndarray, buys: np.ndarray,
              favs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drops funnel events of cold users beyond COLD_USER_MAX_EVENTS (favs first, then buys, then carts)."""
    room = np.where(cold, COLD_USER_MAX_EVENTS - views, np.iinfo(np.int64).max)
    carts = np.minimum(carts, room)
    buys = np.minimum(np.minimum(buys, carts), room - carts)
    favs = np.minimum(favs, room - carts - buys)
    return carts, buys, favs


def _simulate_sessions(rng: np.random.Generator, n: int, scale: float, r: Rates, warp: _TimeWarp,
                       days: float) -> _Sessions:
    """Session-level life of n users: sessions until churn or the window end (censoring).

    Vectorised over users, one loop step per session number; the funnel counts are drawn here
    because the churn hazard depends on the purchases so far.
    """
    cold = rng.random(n) < r.cold_user_fraction
    rate = scale * rng.gamma(r.session_rate_shape, r.session_rate_mean / r.session_rate_shape, n)
    mean_views = 1.0 + scale * (r.views_per_session - 1.0)
    span_days = SESSION_SPAN_S / SECONDS_PER_DAY
    last_start = days - span_days
    activity = rng.uniform(0.0, warp.forward(np.array([last_start]))[0], n)  # users join all through the window
    t = warp.inverse(activity)
    purchases = np.zeros(n, dtype=np.int64)
    churned = np.zeros(n, dtype=bool)
    active = np.arange(n)
    parts = []
    session_number = 0
    while active.size:
        views = rng.geometric(1.0 / mean_views, active.size)
        if session_number == 0:  # warm users start with > COLD_USER_MAX_EVENTS views, so they are never cold
            views = np.where(cold, rng.integers(1, COLD_USER_MAX_EVENTS + 1, n), views + COLD_USER_MAX_EVENTS)
        carts = rng.binomial(views, r.p_cart)
        buys = rng.binomial(carts, r.p_buy)
        favs = rng.binomial(views, r.p_fav)
        if session_number == 0:
            carts, buys, favs = _cap_cold(cold, views, carts, buys, favs)
        parts.append((active, np.full(active.size, session_number), t[active], views, carts, buys, favs))
        purchases[active] += buys
        hazard = np.where(cold[active], 1.0, r.churn_base_hazard * np.exp(-r.churn_buy_decay * purchases[active]))
        leaves = rng.random(active.size) < hazard
        churned[active[leaves]] = True
        active = active[~leaves]
        activity[active] += rng.exponential(1.0, active.size) / rate[active]
        t_next = np.maximum(warp.inverse(activity[active]), t[active] + span_days)
        activity[active] = warp.forward(t_next)
        t[active] = t_next
        active = active[t_next < last_start]
        session_number += 1
    columns = [np.concatenate(c) for c in zip(*parts)]
    order = np.argsort(columns[0], kind="stable")
    user, number, start, views, carts, buys, favs = (c[order] for c in columns)
    return _Sessions(user=user, number=number, start=np.floor(start * SECONDS_PER_DAY).astype(np.int64),
                     views=views, carts=carts, buys=buys, favs=favs, cold=cold, churned=churned)


def _calibrate(seed: int, chunks: list[tuple[int, int]], target: float, r: Rates, warp: _TimeWarp,
               days: float) -> dict:
    """Scale of session rates and lengths whose simulated events per user come closest to target.

    The pilot replays the real session streams of the first chunks (up to PILOT_USERS users), so on
    small data sets the chosen scale reproduces the pilot's event count exactly.
    """
    pilot, budget = [], PILOT_USERS
    for chunk, (_, n) in enumerate(chunks):
        if budget <= 0:
            break
        pilot.append((chunk, min(n, budget)))
        budget -= n
    n_pilot = sum(n for _, n in pilot)
    lo, hi = (math.log(x) for x in SCALE_RANGE)
    best = None
    for _ in range(CALIBRATION_STEPS):
        mid = (lo + hi) / 2
        scale = math.exp(mid)
        per_user = sum(_simulate_sessions(_session_rng(seed, c), n, scale, r, warp, days).n_events
                       for c, n in pilot) / n_pilot
        error = abs(math.log(per_user / target))
        if best is None or error < best[0]:
            best = (error, scale, per_user)
        lo, hi = (mid, hi) if per_user < target else (lo, mid)
    error, scale, per_user = best
    if error > math.log(1 + EVENTS_TOLERANCE):
        warnings.warn(f"events per user: asked {target:.1f}, the closest this generator gets is {per_user:.1f} "
                      f"(cold users have 1-3 events, the others at least {COLD_USER_MAX_EVENTS + 1})", stacklevel=3)
    return {"scale": scale, "pilot_users": n_pilot, "pilot_events_per_user": per_user,
            "target_events_per_user": target, "session_rate_mean": scale * r.session_rate_mean,
            "views_per_session": 1.0 + scale * (r.views_per_session - 1.0)}


# ---------------------------------------------------------------------------------------------- events

def _rank_in_group(rng: np.random.Generator, group: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Random rank of each row within its group (groups are contiguous and ascending)."""
    key = (group.astype(np.int64) << 32) | rng.integers(0, 1 << 32, len(group))
    rank = np.empty(len(group), dtype=np.int64)
    rank[np.argsort(key)] = np.arange(len(group)) - first[group]
    return rank


def _expand_sessions(rng: np.random.Generator, s: _Sessions, r: Rates) -> _Events:
    """Views spread over each session, then the funnel events that follow them."""
    n_views = int(s.views.sum())
    session = np.repeat(np.arange(len(s.views)), s.views)
    first = np.cumsum(s.views) - s.views
    gap = rng.lognormal(math.log(r.view_gap_median_s), 1.0, n_views)
    gap[first] = 0.0
    offset = np.cumsum(gap)
    offset -= offset[first][session]
    view_ts = s.start[session] + np.minimum(offset, VIEW_SPAN_S).astype(np.int64)

    # Exactly the simulated numbers of carts/buys/favs, on random views of the session (buys among carts).
    cart_rank = _rank_in_group(rng, session, first)
    is_cart = cart_rank < s.carts[session]
    is_buy = cart_rank < s.buys[session]
    is_fav = _rank_in_group(rng, session, first) < s.favs[session]

    cart_views = np.flatnonzero(is_cart)
    cart_ts = view_ts[cart_views] + rng.integers(CART_DELAY_S[0], CART_DELAY_S[1] + 1, len(cart_views))
    bought = is_buy[cart_views]
    buy_views = cart_views[bought]
    buy_ts = cart_ts[bought] + rng.integers(BUY_DELAY_S[0], BUY_DELAY_S[1] + 1, len(buy_views))
    fav_views = np.flatnonzero(is_fav)
    fav_ts = view_ts[fav_views] + rng.integers(FAV_DELAY_S[0], FAV_DELAY_S[1] + 1, len(fav_views))

    view = np.concatenate([np.arange(n_views), cart_views, fav_views, buy_views])
    kind = np.repeat(np.array([VIEW, CART, FAV, BUY], dtype=np.int64),
                     [n_views, len(cart_views), len(fav_views), len(buy_views)])
    quantity = np.ones(len(view), dtype=np.int32)
    quantity[kind == BUY] = rng.geometric(r.quantity_p, len(buy_views))
    view_session = session[view]
    return _Events(user=s.user[view_session], ts=np.concatenate([view_ts, cart_ts, fav_ts, buy_ts]), kind=kind,
                   view=view, session=s.number[view_session], quantity=quantity, n_views=n_views)


def _distinct(rng: np.random.Generator, n: int, k: int, rows: int) -> np.ndarray:
    """k distinct values from range(n) per row (sequential draws that skip the values already taken)."""
    out = np.empty((rows, k), dtype=np.int64)
    for j in range(k):
        value = rng.integers(0, n - j, rows)
        for taken in np.sort(out[:, :j], axis=1).T:
            value += value >= taken
        out[:, j] = value
    return out


def _draw_interests(rng: np.random.Generator, n: int, n_sub: int, cold: np.ndarray, r: Rates) -> _Interests:
    k_min, k_max = r.interests_per_user
    subs = _distinct(rng, n_sub, 2 * k_max, n).reshape(n, 2, k_max)  # old and new are disjoint
    k = rng.integers(k_min, k_max + 1, (n, 2))
    column = np.arange(k_max)
    used = column < k[:, :, None]
    weight = np.where(used, rng.gamma(r.interest_concentration, 1.0, (n, 2, k_max)), 0.0)
    cum = np.cumsum(weight, axis=2) / weight.sum(axis=2, keepdims=True)
    cum[column >= (k - 1)[:, :, None]] = 1.0  # u < 1 then never selects past the last used column
    migrated = (rng.random(n) < r.migration_fraction) & ~cold  # too short a history to migrate
    return _Interests(subs=np.where(used, subs, -1), cum=cum, migrated=migrated)


def _assign_items(rng: np.random.Generator, user: np.ndarray, ts: np.ndarray, migration_ts: np.ndarray,
                  interests: _Interests, catalog: _Catalog, r: Rates) -> np.ndarray:
    """Item of each view (views in time order per user)."""
    n = len(user)
    half = (interests.migrated[user] & (ts >= migration_ts[user])).astype(np.int64)
    column = (rng.random(n)[:, None] > interests.cum[user, half]).sum(axis=1)
    sub = np.where(rng.random(n) < r.p_interest, interests.subs[user, half, column],
                   rng.integers(0, catalog.n_sub, n))
    slot = catalog.draw(catalog.cdf_all, sub, rng.random(n))

    # Sequential habit: a continuing view re-visits or steps next to the previous view's item. A run of
    # continuations is a walk from the last fresh view (its anchor), so it is a cumulative sum of steps.
    first_of_user = np.concatenate([[True], user[1:] != user[:-1]])
    cont = (rng.random(n) < r.p_continue) & ~first_of_user
    step = rng.integers(1, r.neighbour_max_offset + 1, n) * rng.choice(np.array([-1, 1]), n)
    step[~cont | (rng.random(n) < r.p_revisit)] = 0
    anchor = np.maximum.accumulate(np.where(cont, 0, np.arange(n)))
    walk = np.cumsum(step)
    sub = sub[anchor]
    slot = np.clip(slot[anchor] + walk - walk[anchor], catalog.sub_start[sub], catalog.sub_start[sub + 1] - 1)

    # A cold item cannot be seen before it exists: draw again among the sub-category's warm items.
    early = ts < catalog.first_ts[catalog.slot_item[slot]]
    slot[early] = catalog.draw(catalog.cdf_warm, sub[early], rng.random(int(early.sum())))
    return catalog.slot_item[slot]


def _timestamps(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(seconds * 1000, TIMESTAMP, mask=null)


def _list_column(subs: np.ndarray, names: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    used = subs >= 0
    if null is not None:
        used &= ~null[:, None]
    offsets = np.concatenate([[0], np.cumsum(used.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(subs[used])),
                                    mask=None if null is None else pa.array(null))


def _chunk_tables(rng: np.random.Generator, s: _Sessions, user_ids: pa.Array, catalog: _Catalog,
                  t0: int, r: Rates) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """Events and ground truth of one chunk of users; also the item index of every event."""
    n = len(user_ids)
    ev = _expand_sessions(rng, s, r)
    # Users are < 2**27 per chunk and times < 2**36 s, so one int64 key sorts by (user, ts).
    order = np.argsort((ev.user << 36) | ev.ts, kind="stable")
    user, ts = ev.user[order], ev.ts[order]
    n_events = np.bincount(user, minlength=n)
    end = np.cumsum(n_events)
    first_ts, last_ts = ts[end - n_events], ts[end - 1]

    interests = _draw_interests(rng, n, catalog.n_sub, s.cold, r)
    migration_ts = first_ts + (rng.random(n) * (last_ts - first_ts + 1)).astype(np.int64)
    views = slice(0, ev.n_views)
    view_item = _assign_items(rng, ev.user[views], ev.ts[views], migration_ts, interests, catalog, r)
    item = view_item[ev.view][order]

    user_col = user_ids.take(pa.array(user))
    events = pa.table({
        "user_id": user_col,
        "item_id": catalog.item_ids.take(pa.array(item)),
        "event_type": pa.array(list(EVENT_TYPES)).take(pa.array(ev.kind[order])),
        "ts": _timestamps(t0 + ts),
        "session_id": pc.binary_join_element_wise(user_col, pc.cast(pa.array(ev.session[order]), pa.string()), "-"),
        "quantity": pa.array(ev.quantity[order]),
        "price": pa.array(catalog.price[item]),
    }, schema=EVENTS_SCHEMA)
    truth = pa.table({
        "user_id": user_ids,
        "interests": _list_column(interests.subs[:, 0], catalog.sub_names),
        "migrated": pa.array(interests.migrated),
        "migration_ts": _timestamps(t0 + migration_ts, null=~interests.migrated),
        "interests_after": _list_column(interests.subs[:, 1], catalog.sub_names, null=~interests.migrated),
        "churned": pa.array(s.churned),
        "churn_ts": _timestamps(t0 + last_ts, null=~s.churned),
        "is_cold": pa.array(n_events <= COLD_USER_MAX_EVENTS),
        "n_events": pa.array(n_events.astype(np.int64)),
    }, schema=GROUND_TRUTH_SCHEMA)
    return events, truth, item


# ---------------------------------------------------------------------------------------------- driver

def _start_seconds(start: str) -> int:
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        raise ValueError(f"start={start!r} is not an ISO date/time, e.g. 2024-01-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _check_sizes(users: int, items: int, days: float, events: int, chunk_users: int) -> None:
    if users < 1:
        raise ValueError(f"users={users}: need at least 1 user, e.g. --users 2000")
    if items < 20:
        raise ValueError(f"items={items}: need at least 20 items for a category tree, e.g. --items 1000")
    if days < 1:
        raise ValueError(f"days={days}: the window must be at least 1 day, e.g. --days 60")
    if events < users:
        raise ValueError(f"events={events} < users={users}: every user has at least one event")
    if not 1 <= chunk_users < 1 << 27:
        raise ValueError(f"chunk_users={chunk_users} must be in [1, 2**27)")


def generate(out_dir: str | Path, *, users: int = 2000, items: int = 1000, days: int = 60, events: int = 100_000,
             seed: int = 0, start: str = "2024-01-01", chunk_users: int = 20_000,
             rates: Rates | None = None) -> dict:
    """Writes the data set; returns a summary dict (also written to out_dir/generator.json).

    ``events`` is met approximately (session rates and lengths are calibrated on a pilot); ``users``
    and ``items`` exactly. ``rates`` overrides the planted rates (default: ``Rates()``).
    """
    r = rates or Rates()
    r.validate()
    _check_sizes(users, items, days, events, chunk_users)
    t0 = _start_seconds(start)
    out = Path(out_dir)
    events_dir = out / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for stale in events_dir.glob("part-*.parquet"):  # a previous run may have had more chunks
        stale.unlink()

    warp = _TimeWarp(r.hour_weights)
    catalog = _build_catalog(np.random.default_rng([seed, STREAM_CATALOG]), items, days, t0, r)
    pq.write_table(catalog.table, out / "items.parquet", row_group_size=ROW_GROUP_ROWS, **PARQUET_WRITER)

    chunks = [(lo, min(chunk_users, users - lo)) for lo in range(0, users, chunk_users)]
    calibration = _calibrate(seed, chunks, events / users, r, warp, days)
    width = max(6, len(str(users - 1)))
    by_type = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    item_seen = np.zeros(items, dtype=bool)
    users_total = {"cold": 0, "migrated": 0, "churned": 0}
    n_sessions = 0
    with pq.ParquetWriter(out / "ground_truth.parquet", GROUND_TRUTH_SCHEMA, **PARQUET_WRITER) as truth_writer:
        for chunk, (lo, n) in enumerate(chunks):
            sessions = _simulate_sessions(_session_rng(seed, chunk), n, calibration["scale"], r, warp, days)
            user_ids = pa.array([f"u{i:0{width}d}" for i in range(lo, lo + n)])
            events_table, truth, item = _chunk_tables(np.random.default_rng([seed, STREAM_EVENTS, chunk]), sessions,
                                                      user_ids, catalog, t0, r)
            pq.write_table(events_table, events_dir / f"part-{chunk:05d}.parquet", row_group_size=ROW_GROUP_ROWS,
                           **PARQUET_WRITER)
            truth_writer.write_table(truth, row_group_size=ROW_GROUP_ROWS)
            by_type += [sessions.views.sum(), sessions.carts.sum(), sessions.favs.sum(), sessions.buys.sum()]
            item_seen[item] = True
            n_sessions += len(sessions.user)
            for key, column in (("cold", "is_cold"), ("migrated", "migrated"), ("churned", "churned")):
                users_total[key] += int(truth[column].to_numpy(zero_copy_only=False).sum())

    params = dict(users=users, items=items, days=days, events=events, seed=seed, start=start, chunk_users=chunk_users)
    summary = _summary(params=params, rates=r, calibration=calibration, catalog=catalog,
                       by_type=by_type, item_seen=item_seen, users_total=users_total, n_sessions=n_sessions,
                       n_files=len(chunks))
    text = json.dumps(summary, indent=2, sort_keys=True)
    (out / "generator.json").write_text(text + "\n")
    return json.loads(text)  # exactly what the file holds (tuples become lists)


def _summary(*, params: dict, rates: Rates, calibration: dict, catalog: _Catalog, by_type: np.ndarray,
             item_seen: np.ndarray, users_total: dict, n_sessions: int, n_files: int) -> dict:
    n = dict(zip(EVENT_TYPES, by_type.tolist()))
    total = int(by_type.sum())
    users = params["users"]
    warm_users = users - users_total["cold"]
    return {
        "params": params,
        "rates": dataclasses.asdict(rates),
        "calibration": calibration,
        "catalog": {"top_categories": catalog.n_top, "sub_categories": catalog.n_sub,
                    "cold_items": int(catalog.cold.sum())},
        "counts": {
            "events": total, "events_by_type": n, "sessions": n_sessions, "event_files": n_files,
            "users": users, "cold_users": users_total["cold"], "migrated_users": users_total["migrated"],
            "churned_users": users_total["churned"], "items": len(item_seen),
            "items_with_events": int(item_seen.sum()),
            "cold_items_with_events": int((item_seen & catalog.cold).sum()),
        },
        "observed": {
            "events_per_user": total / users,
            "view_to_cart": n["cart"] / max(n["view"], 1),
            "cart_to_buy": n["buy"] / max(n["cart"], 1),
            "fav_per_view": n["fav"] / max(n["view"], 1),
            "cold_user_fraction": users_total["cold"] / users,
            "migrated_fraction_of_warm_users": users_total["migrated"] / max(warm_users, 1),
            "churned_fraction": users_total["churned"] / users,
        },
    }


# ---------------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (events/, items.parquet, ground_truth.parquet, generator.json), "
                             "e.g. --out data/synthetic")
    for name, what, example in (("users", "users, each with at least one event", 200_000),
                                ("items", "items in the catalogue", 50_000),
                                ("days", "days in the event window", 90),
                                ("events", "events to aim for (met within ~15%%)", 10_000_000),
                                ("seed", "random seed; equal arguments give byte-identical files", 1)):
        parser.add_argument(f"--{name}", type=int, default=defaults[name], metavar="N",
                            help=f"{what} (default {defaults[name]}), e.g. --{name} {example}")
    parser.add_argument("--start", default=defaults["start"], metavar="DATE",
                        help=f"first day of the window, UTC (default {defaults['start']}), e.g. --start 2023-06-01")


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    summary = generate(args.out, users=args.users, items=args.items, days=args.days, events=args.events,
                       seed=args.seed, start=args.start)
    counts = summary["counts"]
    print(f"generated {counts['events']:,} events (target {args.events:,}) for {counts['users']:,} users and "
          f"{counts['items']:,} items in {counts['event_files']} file(s) -> {args.out} "
          f"[{time.perf_counter() - began:.1f}s]")
    return 0
