"""The planted rates (``Rates``) and the fixed constants of the synthetic generator."""
from __future__ import annotations

from dataclasses import dataclass

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
