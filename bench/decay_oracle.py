"""The Bayes-optimal P(active within H) on synthetic data: the ceiling of any decay predictor there.

The generator (interest/synthetic/simulate.py) plants the process exactly: a user's sessions arrive at a gamma
distributed rate lambda (shape k, mean m) in "activity time" (the hour-of-day warp), after each session a warm user
leaves with probability q = churn_base_hazard * exp(-churn_buy_decay * purchases so far), a cold user always leaves.
Knowing those parameters, the posterior from what a user shows up to the cutoff C (n sessions, first at s_1, last at
s_n, b purchases; A_obs = W(s_n) - W(s_1), A = W(C) - W(s_1), warped) is, with a = n - 1 + k and beta = k / m:

    P(alive at C)         = (1 - q) (beta + A)^-a / [(1 - q) (beta + A)^-a + q (beta + A_obs)^-a]
    P(session in (C, C+H] | alive) = 1 - ((beta + A) / (beta + A + W(C + H) - W(C)))^a

and P(active within H) is their product (cold users: 0). Nothing is fitted; the only approximations are the
generator's 2-hour minimum gap between sessions and a session straddling C (both rare). No predictor that sees the
same events can rank users better on average, so bench/decay_bench.py prints its AUC as the ceiling.

    .venv/bin/python bench/decay_oracle.py GENERATED_DIR --cutoff 2024-03-25 --horizon-days 30
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from interest.synthetic.rates import Rates  # noqa: E402
from interest.synthetic.simulate import _TimeWarp  # noqa: E402
from interest_core.binary import auc, brier  # noqa: E402

DAY_MS = 86_400_000


def bayes_oracle(generated: str | Path, cutoff: str, horizon_days: float, rates: Rates | None = None) -> dict:
    """{auc, brier, n_users, positive_rate, recency_auc} over the users with an event at or before the cutoff;
    the rates are the ones generator.json records (unless given)."""
    generated = Path(generated)
    meta = json.loads((generated / "generator.json").read_text())
    recorded = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.get("rates", {}).items()}
    r = rates or Rates(**recorded)
    start_ms = datetime.fromisoformat(meta["params"]["start"]).replace(tzinfo=timezone.utc).timestamp() * 1000
    cut = (datetime.fromisoformat(cutoff).replace(tzinfo=timezone.utc).timestamp() * 1000 - start_ms) / DAY_MS
    t = pq.read_table(generated / "events", columns=["user_id", "event_type", "ts", "session_id"])
    days = (pc.cast(t["ts"], "int64").to_numpy() - start_ms) / DAY_MS
    users, user = np.unique(t["user_id"].to_numpy(zero_copy_only=False), return_inverse=True)
    sessions, session = np.unique(t["session_id"].to_numpy(zero_copy_only=False), return_inverse=True)
    buy = t["event_type"].to_numpy(zero_copy_only=False) == "buy"
    before, after = days <= cut, (days > cut) & (days <= cut + horizon_days)
    n_u = len(users)
    label = np.bincount(user[after], minlength=n_u) > 0
    seen = np.bincount(user[before], minlength=n_u) > 0
    # per session (before C): start, owner, size; per user: sessions, first / last start, purchases
    s_start = np.full(len(sessions), np.inf)
    np.minimum.at(s_start, session[before], days[before])
    s_user = np.zeros(len(sessions), dtype=np.int64)
    s_user[session[before]] = user[before]
    s_size = np.bincount(session[before], minlength=len(sessions))
    live = s_size > 0
    n_sess = np.bincount(s_user[live], minlength=n_u)
    first = np.full(n_u, np.inf)
    last = np.full(n_u, -np.inf)
    np.minimum.at(first, s_user[live], s_start[live])
    np.maximum.at(last, s_user[live], s_start[live])
    first_size = np.zeros(n_u, dtype=np.int64)
    is_first = live & (s_start == first[s_user])
    first_size[s_user[is_first]] = s_size[is_first]
    buys = np.bincount(user[before & buy], minlength=n_u)
    cold = (n_sess == 1) & (first_size <= 3)  # warm users' first session has more than 3 views
    cal = meta["calibration"]
    k, m = r.session_rate_shape, cal["session_rate_mean"]
    a, beta = n_sess - 1 + k, k / m
    warp = _TimeWarp(r.hour_weights)
    w = lambda x: warp.forward(np.asarray(x, dtype=np.float64))  # noqa: E731
    idx = np.flatnonzero(seen)
    f, l_, ai = w(first[idx]), w(last[idx]), a[idx]
    wc = w(np.full(len(idx), cut))
    big_a, a_obs = wc - f, l_ - f
    q = r.churn_base_hazard * np.exp(-r.churn_buy_decay * buys[idx])
    log_alive = np.log1p(-q) - ai * np.log(beta + big_a)
    log_dead = np.log(q) - ai * np.log(beta + a_obs)
    p_alive = 1 / (1 + np.exp(log_dead - log_alive))
    h_act = w(np.full(len(idx), cut + horizon_days)) - wc
    p = p_alive * (1 - np.exp(ai * (np.log(beta + big_a) - np.log(beta + big_a + h_act))))
    p = np.where(cold[idx], 0.0, p)
    y = label[idx].astype(np.float64)
    return {"auc": auc(p, y), "brier": brier(p, y), "n_users": int(len(idx)), "positive_rate": float(y.mean()),
            "recency_auc": auc(-(cut - last[idx]), y)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("generated", help="a directory written by `interest generate`")
    ap.add_argument("--cutoff", required=True)
    ap.add_argument("--horizon-days", type=float, required=True)
    a = ap.parse_args()
    print(json.dumps(bayes_oracle(a.generated, a.cutoff, a.horizon_days), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
