"""User side features: what a model knows of a user besides their events (age, gender, occupation, region).

One place for: the feature names and their order in a row's `user_features` list, how a raw value becomes a
string (age -> age group, a postal code -> its first three characters, a country name whole), and how that string becomes an embedding
id (CRC-32 of "name=value" into a fixed number of buckets: no vocabulary to keep in step with the data, and the
same id in Spark (its crc32 is java.util.zip.CRC32, the same polynomial as zlib's) and in Python).

A row's user_features holds one id per feature in USER_FIELDS order: 0 = unknown (no users-file row, or an
empty / unusable value), 1..buckets otherwise. Data built without a users file has empty lists.
"""
from __future__ import annotations

import zlib

USER_FIELDS = ("age", "gender", "occupation", "region")
# Age groups as MovieLens-1M defines them; an age outside [1, 120] is unusable (unknown), never a group.
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_GROUPS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
REGION_CHARS = 3  # a postal code's first three characters (US ZIP3): a region, not an address


def region_value(value: str) -> str:
    """A postal code (a value with a digit) -> its first REGION_CHARS characters; a place name (a country) whole."""
    value = value.strip()
    return value[:REGION_CHARS] if any(c.isdigit() for c in value) else value


def age_group(age: float | None) -> str | None:
    if age is None or not 1 <= age <= 120:
        return None
    return AGE_GROUPS[sum(age >= e for e in AGE_EDGES)]


def feature_id(name: str, value: str | None, buckets: int) -> int:
    """1..buckets for a feature's value string, 0 for none (the Spark job computes the same with F.crc32)."""
    if value is None or not value.strip():
        return 0
    return zlib.crc32(f"{name}={value.strip().lower()}".encode()) % buckets + 1
