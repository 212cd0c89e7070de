"""Real words for the synthetic categories, so that item titles carry what a text encoder can find.

Each top category gets a product noun and each of its sub-categories a modifier; an item's title holds its
sub-category's "modifier noun" beside its brand and pseudo-words. The words are a fixed choice by index (no random
draws), so adding them leaves every other draw of the generator as it was.
"""
from __future__ import annotations

import numpy as np

NOUNS = ("headphones", "sneakers", "backpack", "laptop", "coffee maker", "dress", "wristwatch", "tent", "blender",
         "sofa", "novel", "lipstick", "guitar", "drill", "yoga mat", "camera", "jacket", "teapot", "bicycle",
         "perfume", "board game", "lamp", "smartphone", "cookware set", "sunglasses", "dog food", "vacuum cleaner",
         "football", "jeans", "printer", "toy car", "necklace", "shampoo", "monitor", "suitcase", "desk chair",
         "fishing rod", "keyboard", "baby stroller", "tea", "wine glass", "puzzle", "skateboard", "mattress",
         "handbag", "speaker", "socks", "paint brush", "garden hose", "cereal", "candle", "helmet", "microwave",
         "notebook", "watch strap", "ski boots", "hair dryer", "tablet", "swimsuit", "olive oil", "vitamins",
         "cat litter", "phone case", "violin", "rug")
MODIFIERS = ("wireless", "leather", "organic", "compact", "vintage", "waterproof", "kids", "professional", "cotton",
             "stainless steel", "electric", "handmade", "lightweight", "premium", "travel", "wooden", "smart",
             "classic", "outdoor", "mini")


def subcategory_words(sub_top: np.ndarray) -> list[str]:
    """Per sub-category (sub_top[s] = its top category, sub-categories of one top category contiguous), the phrase
    "modifier noun": distinct within a top category while it has at most len(MODIFIERS) sub-categories; a top
    category past len(NOUNS) reuses a noun with a numbered series."""
    words = []
    for s, t in enumerate(sub_top.tolist()):
        local = s - int(np.searchsorted(sub_top, t))  # position among its top category's sub-categories
        noun = NOUNS[t % len(NOUNS)] + ("" if t < len(NOUNS) else f" series {t // len(NOUNS) + 1}")
        words.append(f"{MODIFIERS[(local + 3 * t) % len(MODIFIERS)]} {noun}")
    return words
