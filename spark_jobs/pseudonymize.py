"""Pseudonymize user ids with keyed HMAC-SHA256.

The key comes from the environment (INTEREST_HMAC_KEY) or a secret file, never from the config, the manifest or
the logs; only a key id (a hash of the key, not reversible) is recorded so a data set tells which key made it.
The key reaches executors inside the pickled UDF closure, so it never appears in a query plan or the Spark UI.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ENV_VAR = "INTEREST_HMAC_KEY"
# Announced loudly wherever it is used; it protects nothing.
INSECURE_DEMO_KEY = b"interest-trainer-insecure-demo-key"


class PseudonymKeyError(ValueError):
    """No usable pseudonymization key."""


def load_key(key_file: str | None = None, allow_insecure_demo_key: bool = False) -> tuple[bytes, str]:
    """Returns (key, source description). Refuses to run without a key unless the demo key is allowed."""
    if key_file:
        key = Path(key_file).read_bytes().strip()
        if len(key) < 16:
            raise PseudonymKeyError(f"--hmac-key-file {key_file}: key is {len(key)} bytes; "
                                    "use at least 16 random bytes")
        return key, f"file:{key_file}"
    env = os.environ.get(ENV_VAR)
    if env:
        if len(env) < 16:
            raise PseudonymKeyError(f"{ENV_VAR} is {len(env)} characters; use at least 16 random characters")
        return env.encode(), f"env:{ENV_VAR}"
    if allow_insecure_demo_key:
        return INSECURE_DEMO_KEY, "insecure-demo-key"
    raise PseudonymKeyError(f"no pseudonymization key: set {ENV_VAR} or pass --hmac-key-file PATH "
                    "(for a throwaway demo only: --allow-insecure-demo-key)")


def key_id(key: bytes, salt: str | None = None) -> str:
    """"SALT$DIGEST": which key pseudonymized a data set, without letting anyone test candidate keys against a
    table of precomputed ids (a fresh random salt per data set; key_matches recomputes with the stored salt)."""
    salt = salt if salt is not None else secrets.token_hex(8)
    digest = hmac.new(key, b"interest-trainer key id\x00" + salt.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{salt}${digest}"


def key_matches(key: bytes, stored_id: str) -> bool:
    """True when `key` is the key a manifest's key_id was made from."""
    salt, _, _ = stored_id.partition("$")
    return hmac.compare_digest(key_id(key, salt), stored_id)


def hmac_column(col: Column, key: bytes) -> Column:
    @F.pandas_udf("string")
    def _hmac(ids: pd.Series) -> pd.Series:
        return ids.map(lambda s: None if s is None or s != s else
                       hmac.new(key, s.encode("utf-8"), hashlib.sha256).hexdigest())  # null stays null

    return _hmac(col)


def pseudonymize_users(events: DataFrame, key: bytes) -> DataFrame:
    """Replaces user_id by its HMAC-SHA256 hex digest; every other column unchanged."""
    return events.withColumn("user_id", hmac_column(F.col("user_id"), key))
