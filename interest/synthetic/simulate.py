"""The simulation behind the synthetic data set, in numpy arrays: sessions, interests, events (the catalogue is
``catalog``).

All times are seconds since the window start; item, user and sub-category numbers index the arrays.
Turning them into Arrow tables and files is the job of ``write``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .catalog import _Catalog
from .rates import (BUY, BUY_DELAY_S, CALIBRATION_STEPS, CART, CART_DELAY_S, COLD_USER_MAX_EVENTS, EVENTS_TOLERANCE,
                    FAV, FAV_DELAY_S, PILOT_USERS, SCALE_RANGE, SECONDS_PER_DAY, SESSION_SPAN_S, STREAM_SESSIONS,
                    VIEW, VIEW_SPAN_S, Rates)


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


@dataclass
class _Chunk:
    """A chunk of users after item assignment: its events sorted by (user, ts), then per-user truth."""

    user: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    item: np.ndarray
    session: np.ndarray
    """The session's number within its user."""
    quantity: np.ndarray
    n_events: np.ndarray
    """Per user, as the fields below."""
    last_ts: np.ndarray
    migration_ts: np.ndarray
    interests: _Interests
    churned: np.ndarray

    @property
    def is_cold(self) -> np.ndarray:
        return self.n_events <= COLD_USER_MAX_EVENTS


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


def _simulate_chunk(rng: np.random.Generator, s: _Sessions, catalog: _Catalog, r: Rates) -> _Chunk:
    """Events of one chunk of users (from its sessions) with their items, and the planted interests."""
    n = len(s.cold)
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
    return _Chunk(user=user, ts=ts, kind=ev.kind[order], item=view_item[ev.view][order], session=ev.session[order],
                  quantity=ev.quantity[order], n_events=n_events, last_ts=last_ts, migration_ts=migration_ts,
                  interests=interests, churned=s.churned)
