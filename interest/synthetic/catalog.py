"""The synthetic catalogue: categories, items, popularity, cold items, prices, brands and titles (numpy arrays).

Item, sub-category and category numbers index the arrays; ``write`` turns them into the items table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .rates import SECONDS_PER_DAY, SESSION_SPAN_S, WARM_ITEM_HISTORY_DAYS, Rates
from .words import subcategory_words


@dataclass
class _Catalog:
    """Items in a sub-category-major layout of 'slots' that makes sampling vectorised.

    The items of sub-category s occupy slots sub_start[s]:sub_start[s+1], in item-id order (which
    defines neighbours). cdf_* hold s + the cumulative popularity share within s, a monotone array,
    so searchsorted(cdf, s + u) draws an item of s by popularity for a whole vector of events.
    """

    sub_names: list[str]
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
    item_sub: np.ndarray
    """Per item, its sub-category."""
    brand: list[str]
    title: list[str]

    @property
    def n_sub(self) -> int:
        return len(self.sub_names)

    @staticmethod
    def draw(cdf: np.ndarray, sub: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.searchsorted(cdf, sub + u, side="right")

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


def _item_titles(rng: np.random.Generator, item_sub: np.ndarray, brands: list[str], sub_top: np.ndarray,
                 r: Rates) -> list[str]:
    """Brand, the sub-category's real words (words.py) and 3-6 pseudo-words from the sub-category's vocabulary."""
    n_sub = len(sub_top)
    size = r.vocabulary_per_subcategory
    vocabulary = np.array(_pseudo_words(rng, n_sub * size), dtype=object).reshape(n_sub, size)
    n_words = rng.integers(r.title_words[0], r.title_words[1] + 1, len(item_sub))
    # Distinct words per title: the first n of a random permutation of the sub-category's vocabulary.
    picks = np.argsort(rng.random((len(item_sub), size)), axis=1)[:, : r.title_words[1]]
    words = vocabulary[item_sub[:, None], picks].tolist()
    phrase = subcategory_words(sub_top)
    return [" ".join([brand, phrase[s], *row[:k]])
            for brand, s, row, k in zip(brands, item_sub.tolist(), words, n_words.tolist())]


def _build_catalog(rng: np.random.Generator, n_items: int, days: float, r: Rates) -> _Catalog:
    n_top = max(2, round(math.sqrt(n_items) / 2))
    subs_per_top = rng.integers(r.subcategories_per_category[0], r.subcategories_per_category[1] + 1, n_top)
    n_sub = int(subs_per_top.sum())
    if n_sub > n_items or n_sub < 2 * r.interests_per_user[1]:
        raise ValueError(f"items={n_items} gives {n_sub} sub-categories; need at least "
                         f"{2 * r.interests_per_user[1]} and at most one per item (try --items 1000)")
    sub_top = np.repeat(np.arange(n_top), subs_per_top)
    width_top, width_sub = max(2, len(str(n_top - 1))), max(2, len(str(n_sub - 1)))
    sub_names = [f"Cat{t:0{width_top}d}/Sub{s:0{width_sub}d}" for s, t in enumerate(sub_top.tolist())]

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
    brands = brand.tolist()
    titles = _item_titles(rng, item_sub, brands, sub_top, r)
    return _Catalog(
        sub_names=sub_names, n_top=n_top, sub_start=sub_start, slot_item=slot_item, slot_sub=slot_sub,
        cdf_all=_sub_cdf(np.where(slot_cold, weight * r.cold_item_boost, weight), slot_sub, sub_start),
        cdf_warm=_sub_cdf(np.where(slot_cold, 0.0, weight), slot_sub, sub_start),
        first_ts=first_ts, cold=cold, price=price, item_sub=item_sub, brand=brands, title=titles,
    )
