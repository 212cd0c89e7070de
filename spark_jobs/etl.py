"""The ETL job: raw events -> validated, pseudonymized, leakage-free sequence shards.

    interest etl --input PATH --format FMT --output DIR [...]
    spark-submit spark_jobs/etl.py --input PATH --format FMT --output DIR [...]

Stages (each a pure DataFrame -> DataFrame function in its own module):
ingest -> validate/quarantine -> dedupe (grouped by the input's user id) and pseudonymize (once per user) -> vocab
(training counts) -> index -> sequences -> shards -> item features -> graph (docs/design.md: passes and shuffles).
Nothing event-sized is collected to the driver: only counts, per-reason tallies and small vocabularies of
event types. Each run writes a new version of the output directory, `_SUCCESS` last, then makes it current by
replacing one pointer file (spark_jobs/publish.py): readers never see a half-written version.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # spark-submit spark_jobs/etl.py: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from interest_core import storage  # noqa: E402
from interest_core.config import Config, load_config  # noqa: E402
from interest_core.contract import OOV_ID, SCHEMA_VERSION, num_event_types  # noqa: E402
from interest_core.data_versions import SUCCESS  # noqa: E402
from interest_core.windows import WindowRule  # noqa: E402
from spark_jobs import (graph, ingest, items, online_retail, pseudonymize, publish, sequences, users,  # noqa: E402
                        validate, vocab)
from spark_jobs.dedupe import user_event_lists  # noqa: E402
from spark_jobs.session import JVM_OUT_OF_MEMORY, get_spark, jvm_exit_code  # noqa: E402
from spark_jobs.validate import QuarantineLimitExceeded, check_quarantine, check_time_split  # noqa: E402,F401


class SparkJvmExited(RuntimeError):
    """Spark's JVM ended under the job (out of memory, or killed)."""

    def __init__(self, code: int, driver_memory: str):
        why = ("ran out of memory (java.lang.OutOfMemoryError)" if code == JVM_OUT_OF_MEMORY
               else f"exited with code {code}")
        super().__init__(f"Spark's JVM {why} and the ETL stopped; nothing was published. Give it more memory "
                         f"(--set data.spark_driver_memory=..., now {driver_memory}; on a cluster the executors' "
                         f"spark.executor.memory); a user with millions of events needs a heap that holds their "
                         f"whole history")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="events file, directory or glob, e.g. --input data/events.csv")
    p.add_argument("--format", required=True, choices=ingest.FORMATS,
                   help="input format, e.g. --format retailrocket (see README: Input formats)")
    p.add_argument("--output", required=True,
                   help="data directory or URI (s3://, gs://, hdfs://, file://); each run publishes a new version of "
                        "it, e.g. --output out/data")
    p.add_argument("--items", default=None, help="item catalog (Parquet/CSV/.item), e.g. --items data/items.csv")
    p.add_argument("--users", default=None,
                   help="user side features (CSV/Parquet/JSON lines/.user: user_id, age, gender, occupation, region), "
                        "e.g. --users data/users.csv")
    p.add_argument("--users-map", default=None,
                   help="users file column map canonical=source, e.g. --users-map user_id=uid,region=zip")
    p.add_argument("--map", default=None, dest="column_map",
                   help="generic/recbole column map canonical=source, e.g. --map user_id=visitor,ts=time")
    p.add_argument("--ts-unit", default="auto", choices=["auto", "s", "ms", "iso"],
                   help="timestamp unit; auto: numbers < 1e11 are seconds, larger ms, else ISO-8601")
    p.add_argument("--sep", default=None, help="field separator for delimited input, e.g. --sep ';'")
    p.add_argument("--split", default=None, choices=["leave-one-out", "time"], help="e.g. --split time")
    p.add_argument("--cutoff", default=None, help="split=time cutoff (UTC ISO), e.g. --cutoff 2024-03-01")
    p.add_argument("--horizon-days", type=float, default=None, help="decay label horizon, e.g. --horizon-days 7")
    p.add_argument("--max-len", type=int, default=None, help="training window length, e.g. --max-len 50")
    p.add_argument("--cold-items", type=float, default=None, metavar="FRACTION",
                   help="hold out this fraction of items from training (zero-shot evaluation), e.g. --cold-items 0.1")
    p.add_argument("--cold-users", type=float, default=None, metavar="FRACTION",
                   help="hold out this fraction of users from training, their test history cut to 1-3 events "
                        "(new-user evaluation), e.g. --cold-users 0.1")
    p.add_argument("--config", default=None, help="preset name or YAML file, e.g. --config tiny-cpu")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   help="override a config key, e.g. --set data.min_item_count=5 (repeatable)")
    p.add_argument("--hmac-key-file", default=None,
                   help="file holding the pseudonymization key (else $INTEREST_HMAC_KEY), e.g. --hmac-key-file key")
    p.add_argument("--allow-insecure-demo-key", action="store_true",
                   help="demo only: pseudonymize with a fixed, publicly known key")
    p.add_argument("--master", default=None, help="Spark master when not under spark-submit, e.g. --master local[2]")


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    for flag, key in [("split", "split"), ("cutoff", "cutoff"), ("horizon_days", "horizon_days"),
                      ("max_len", "max_len"), ("cold_items", "cold_items"), ("cold_users", "cold_users")]:
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"data.{key}={value}")
    return load_config(args.config, overrides)


def _fingerprint(path: str, flag: str = "--input") -> dict:
    """Names and sizes of the input files (a file, a directory or a glob): what the manifest records of the input.
    Run before any Spark work, so a missing or unreadable input fails at once."""
    import glob

    p = Path(path)
    if p.is_dir():
        base, files = p, sorted(f for f in p.rglob("*") if f.is_file())
    elif p.is_file():
        base, files = p.parent, [p]
    else:
        files = sorted(Path(f) for f in glob.glob(path, recursive=True) if Path(f).is_file())
        base = Path(os.path.commonpath([str(f.parent) for f in files])) if files else p.parent
    if not files:
        raise FileNotFoundError(f"{flag} {path!r}: no such file, directory or matching glob; check the path")
    h, modified = hashlib.sha256(), 0.0
    for f in files:
        modified = max(modified, f.stat().st_mtime)
        if not os.access(f, os.R_OK):
            raise ValueError(f"{flag} {path!r}: {f} is not readable; fix its permissions")
        h.update(f"{f.relative_to(base)}:{f.stat().st_size}\n".encode())
    return {"path": os.path.abspath(path), "files": len(files), "bytes": sum(f.stat().st_size for f in files),
            "sha256_names_sizes": h.hexdigest(), "modified_ts": int(modified)}


def users_file(args: argparse.Namespace) -> str | None:
    """--users, or the synthetic generator's users.parquet beside its events."""
    if getattr(args, "users", None):
        return args.users
    found = Path(args.input) / "users.parquet"
    return str(found) if args.format == "synthetic" and found.exists() else None


def input_fingerprints(args: argparse.Namespace) -> dict:
    return {"format": args.format, **_fingerprint(args.input),
            "items": _fingerprint(args.items, "--items") if args.items else None,
            "users": _fingerprint(args.users, "--users") if getattr(args, "users", None) else None}


# The two event-sized caches (the user lists, each user's indexed events) go to local disk, not the
# heap: with execution memory off the heap (data.spark_offheap_memory), MEMORY_AND_DISK let them fill the heap's whole
# unified region once the data outgrew it (100M events on a 6g heap), leaving too little for what Spark does not
# account (the cache's column builders, array expressions, broadcast relations): the JVM died in the windows'
# write. On disk the same run completes, and at 10M events the ETL is no slower and its JVM peak 1.9 GB lower
# (README: Known limits). The OS page cache still keeps the files in memory while there is room.
EVENT_SIZED = StorageLevel.DISK_ONLY


def _write(df: DataFrame, path: publish.Target, row_group_mb: int) -> None:
    """One file per partition of df: a per-user frame cut row by row from the split, which is hash-partitioned by
    user_id into data.num_files partitions and sorted by user_id inside each (no shuffle, no sort here)."""
    df.write.option("parquet.block.size", row_group_mb * 1024 * 1024).mode("overwrite").parquet(str(path))


def _has_category(checked: DataFrame) -> bool:
    """Whether the events themselves carry item categories (Taobao, generic with a mapped category column)."""
    return checked.where(F.col("category").isNotNull()).limit(1).count() > 0


def run_etl(spark: SparkSession, args: argparse.Namespace, cfg: Config, inputs: dict | None = None) -> dict:
    """One ETL run on a started Spark; inputs: input_fingerprints(args) when the caller already took them."""
    t0 = time.time()
    key, key_source = pseudonymize.load_key(args.hmac_key_file, args.allow_insecure_demo_key)
    if key_source == "insecure-demo-key":
        print("WARNING: pseudonymizing users with the PUBLIC insecure demo key (--allow-insecure-demo-key); "
              "never use this for real user data", file=sys.stderr)
    out = storage.normalize(args.output)  # a local path or a URI of shared storage (interest_core/storage.py)
    inputs = inputs or input_fingerprints(args)
    version = publish.prepare(out)
    try:
        now = cfg.data.now_ts if cfg.data.now is not None else inputs["modified_ts"]
        manifest = _build(spark, args, cfg, publish.Target(version), key, now) | {"input": inputs,
                                                                                   "validated_now_ts": now}
        manifest.update(pseudonymization={"algorithm": "HMAC-SHA256", "key_id": pseudonymize.key_id(key),
                                          "key_source": key_source.split(":")[0]}, version=storage.basename(version))
        manifest["wall_time_s"] = round(time.time() - t0, 3)
        manifest["ingest_rows_per_s"] = manifest["counts"]["rows_in"] / max(manifest["wall_time_s"], 1e-9)
        storage.write_text(storage.join(version, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True))
        storage.write_text(storage.join(version, SUCCESS), "")
    except QuarantineLimitExceeded as exc:  # the quarantined rows are the evidence: kept, never deleted
        publish.mark_failed(version, str(exc))
        raise QuarantineLimitExceeded(f"{exc}. The quarantined rows are in {storage.join(version, 'quarantine')}; "
                                      f"the current data of {out} is unchanged") from None
    except BaseException:
        storage.delete(version)
        raise
    for line in publish.publish(out, version):
        print(f"etl: {line}", flush=True)
    return manifest


class _Stages:
    """Wall seconds per ETL stage (Spark is lazy: a stage's time is that of the actions that run it)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._t, 3)
        self._t = now


def _build(spark: SparkSession, args: argparse.Namespace, cfg: Config, tmp: publish.Target, key: bytes,
           now: int) -> dict:
    d = cfg.data
    if d.baskets is None:  # the format's default (validated: it refuses --cold-users); the manifest records it
        d = type(d).model_validate(d.model_dump() | {"baskets": args.format in ingest.BASKETS_BY_DEFAULT})
        cfg = cfg.model_copy(update={"data": d})
    baskets = d.baskets and d.split == "leave-one-out"  # split=time cuts by time alone
    st = _Stages()
    rules = validate.rules_from_config(d, args.ts_unit, now)
    raw = ingest.read_events(spark, args.input, args.format, ingest.parse_column_map(args.column_map), args.sep)
    # The validated input is not cached (building Spark's cache of it cost twice the validation itself: 10M events,
    # 54 s vs 19 s): the quarantine write and the user lists each validate the input in their own pass. A pass over
    # the user ids alone counts the rows and finds whether any user may be over data.max_events_per_user; only then
    # does the exact cap (an aggregation over the valid rows) run.
    validated = validate.with_reason(raw, rules)
    sizes = raw.groupBy(F.trim("user_id").alias("u")).count().agg(
        F.sum("count").alias("rows"), F.max("count").alias("most")).first()
    rows_in = int(sizes["rows"] or 0)
    checked, capped_users = validated, 0
    if d.max_events_per_user and (sizes["most"] or 0) > d.max_events_per_user:
        checked, capped_users = validate.cap_events_per_user(validated, d.max_events_per_user)
    st.done("ingest_validate")
    # repartition(1), not coalesce(1): coalesce would run the whole validation pass in one task; the shuffle moves
    # only the rejected rows, written in input order.
    (validate.quarantined(checked, key).repartition(1).sortWithinPartitions("source", "position")
     .write.mode("overwrite").parquet(str(tmp / "quarantine")))
    tallies = {r["reason"]: r["count"] for r in spark.read.parquet(str(tmp / "quarantine")).groupBy("reason")
               .count().collect()}
    tallies[None] = rows_in - sum(tallies.values())  # valid rows; the lists' reconciliation below checks them
    quarantine = check_quarantine(tallies, d.max_quarantine_fraction) | {"users_capped": capped_users}
    st.done("quarantine_write")

    events = validate.valid_events(checked)
    catalog = catalog_read = ingest.read_items(spark, args.format, args.input, args.items)
    if catalog is None and args.format in ("taobao", "generic") and _has_category(checked):
        catalog = items.catalog_from_events(events)
    if catalog is not None:  # one row per item, by a stated rule (items.one_row_per_item)
        catalog = items.one_row_per_item(catalog).persist()
        catalog.count()
    # One shuffle by user does dedupe and grouping. The lists keep the input's user ids (in memory only, never
    # written) beside their pseudonyms (pid: the HMAC runs once per user, not once per event): indexing regroups
    # them by the same key without a second shuffle.
    lists = user_event_lists(events, sessions=baskets).withColumn(
        "pid", pseudonymize.hmac_column(F.col("user_id"), key)).persist(EVENT_SIZED)
    # One native aggregation over the exploded lists (every user has at least one event): a user is counted at
    # their first event, which also carries their n_raw.
    flat = lists.select("n_raw", F.posexplode("ev").alias("pos", "e"))
    first = F.col("pos") == 0
    per_type = [F.count_if(F.col("e.event_type") == t).alias(f"type_{i}") for i, t in enumerate(d.event_types)]
    agg = flat.agg(F.count_if(first).alias("users"), F.sum(F.when(first, F.col("n_raw"))).alias("n_raw"),
                   F.count(F.lit(1)).alias("used"), F.min("e.ts").alias("first_ts"), F.max("e.ts").alias("last_ts"),
                   *per_type).first()
    if d.split == "time":
        check_time_split(d.cutoff_ts, d.horizon_s, agg["first_ts"], agg["last_ts"])
    st.done("dedupe_pseudonymize")

    # The vocabulary reads training counts only: the same split and holdouts as the outputs', cut from the lists.
    per_user = lists.select(F.col("pid").alias("user_id"), "ev", *([sequences.basket_starts("ev").alias(
        "basket_start")] if baskets else []))
    train_split = sequences.split_and_hold_out(sequences.mark_held_out_items(per_user, d.cold_items), d)
    counts_df = vocab.item_counts(lists, train_split, d.event_types).persist()
    item_vocab = vocab.item_vocab(counts_df, d.min_item_count,
                                  catalog if d.catalog_items and catalog is not None else None,
                                  vocab.content_items(catalog) if catalog_read is not None else None).persist()
    n_vocab_rows = item_vocab.count()
    cats = vocab.category_vocab(catalog.select("category") if catalog is not None
                                else spark.createDataFrame([], "category string")).persist()
    item_cat = (catalog.join(F.broadcast(cats), "category", how="inner")
                .select("item_id", "category_idx") if catalog is not None
                else spark.createDataFrame([], "item_id string, category_idx int"))
    item_index = item_vocab.join(item_cat, on="item_id", how="left").select(
        "item_id", "item_idx", F.coalesce("category_idx", F.lit(0)).alias("category_idx"))
    st.done("vocab")

    seqs = sequences.index_sequences(lists, item_index, d.event_types,
                                     broadcast_items=n_vocab_rows <= d.broadcast_max_items, cold_items=d.cold_items)
    user_feats, users_counts = None, None
    users_path = users_file(args)
    if users_path:
        user_feats, users_quarantine, users_counts = users.build(
            spark, users_path, users.parse_users_map(getattr(args, "users_map", None)), d.user_feature_buckets, key)
        users_quarantine.coalesce(1).write.mode("append").parquet(str(tmp / "quarantine"))
    elif args.format == online_retail.NAME:  # each customer's country is their region
        user_feats, _, users_counts = users.build_from_rows(
            online_retail.users(ingest.read_invoice_lines(spark, args.input)), d.user_feature_buckets, key)
    # Every per-user output is cut from this frame, partitioned once by the pseudonym into the output's files and
    # sorted by it inside each: each output is written without a shuffle or a sort of its own, its rows in user
    # order (windows in order inside a user), so reruns are byte-identical. Only each user's events are shuffled
    # and stored; the split (prefixes and suffixes of them) is cut where each output reads it.
    seqs = (users.attach(seqs.repartition(d.num_files, "user_id"), user_feats).sortWithinPartitions("user_id")
            .persist(EVENT_SIZED))
    split = sequences.split_and_hold_out(seqs, d)
    train_counts = sequences.item_train_counts(split).persist()
    rule = WindowRule(d.max_len, d.effective_stride)
    buy = d.buy_event_type
    _write(sequences.training_windows(split, rule, buy), tmp / "train", d.row_group_mb)
    st.done("sequences_train")
    _write(sequences.action_windows(split, rule, buy), tmp / "action_test", d.row_group_mb)
    for which in ("valid", "test"):
        _write(sequences.eval_rows(split, which, d.max_len, F.broadcast(train_counts), d.tag_half_life_days),
               tmp / which, d.row_group_mb)
    decay_ends = {"decay_valid": d.cutoff_ts - d.horizon_s, "decay_test": d.cutoff_ts} if d.split == "time" else {}
    for name, end_ts in decay_ends.items():
        _write(sequences.decay_rows(split, name.split("_")[1], d.max_len, end_ts, buy), tmp / name, d.row_group_mb)
    for which in ("valid", "test"):  # the interest-migration rows: the end of observation of valid/test
        end_ts = {"valid": d.cutoff_ts - d.horizon_s, "test": d.cutoff_ts}[which] if d.split == "time" else None
        _write(sequences.drift_rows(split, which, d.drift_max_events, end_ts), tmp / f"drift_{which}", d.row_group_mb)
    st.done("sequences_eval")
    first_seen = counts_df.select("item_id", "first_seen_ts")
    (items.item_features(item_vocab, catalog, cats, first_seen, train_counts)
     .coalesce(1).sortWithinPartitions("item_idx").write.mode("overwrite").parquet(str(tmp / "items")))
    st.done("item_features")
    planted = ingest.read_planted(spark, args.format, args.input)
    if planted is not None:  # the generator's ground truth, pseudonymized like the events
        (pseudonymize.pseudonymize_users(planted, key).coalesce(1).sortWithinPartitions("user_id")
         .write.mode("overwrite").parquet(str(tmp / "planted")))
    # repartition, not coalesce: coalesce(1) would pull the top-K pass (every distinct pair) into one task; the
    # shuffle moves only the small top-K result.
    (graph.item_graph(split, d.graph_window, int(d.graph_max_gap_hours * 3600), d.graph_top_k, d.shuffle_partitions)
     .repartition(1).sortWithinPartitions("src", "rank").write.mode("overwrite").parquet(str(tmp / "graph")))
    st.done("graph")
    item_vocab.coalesce(1).sortWithinPartitions("item_idx", "item_id").write.mode("overwrite").parquet(
        str(tmp / "vocab" / "items"))
    cats.coalesce(1).sortWithinPartitions("category_idx").write.mode("overwrite").parquet(
        str(tmp / "vocab" / "categories"))
    vocab.event_type_vocab(spark, d.event_types).coalesce(1).write.mode("overwrite").parquet(
        str(tmp / "vocab" / "event_types"))
    max_item = item_vocab.agg(F.max("item_idx")).first()[0] or 1
    cold_items = (item_vocab.where((F.col("item_idx") > OOV_ID) & sequences.held_out_item(F.col("item_id"),
                                                                                          d.cold_items)).count()
                  if d.cold_items > 0 else 0)
    train_types = vocab.train_event_type_counts(counts_df, d.event_types)
    n_cats = cats.count()
    catalog_only = item_vocab.where(F.col("count") == 0).count() if d.catalog_items else 0
    cold_users = (split.where(sequences.held_out_user(F.col("user_id"), d.cold_users)
                              & F.col("test_target").isNotNull()).count() if d.cold_users > 0 else 0)
    if users_counts is not None:
        users_counts["users_with_events"] = users.users_with_events(split)
    # Released only now, dependants first: Spark rebuilds the cache of every frame that depends on an unpersisted
    # one, so releasing `lists` after the train write made every later output recompute the split from scratch.
    for df in (train_counts, seqs, user_feats, item_vocab, cats, counts_df, catalog, lists):
        if df is not None:
            df.unpersist()
    rows_valid = quarantine["rows_in"] - quarantine["rows_quarantined"]
    if agg["n_raw"] != rows_valid:
        raise AssertionError(f"lost rows: {rows_valid} valid rows but {agg['n_raw']} reached the user lists")
    written = ("train", "valid", "test", "action_test", *decay_ends, "drift_valid", "drift_test")
    rows = {s: (tmp / s).parquet_rows() for s in written}
    used, n_users = int(agg["used"]), int(agg["users"])
    counts = {"rows_in": quarantine["rows_in"], "rows_quarantined": quarantine["rows_quarantined"],
              "rows_valid": rows_valid, "rows_used": used, "rows_deduplicated": rows_valid - used, "users": n_users,
              "users_without_target": n_users - rows["test"],  # a test row: a user with a test target
              "event_types": {t: int(agg[f"type_{i}"] or 0) for i, t in enumerate(d.event_types)},
              "event_types_train": train_types}  # the training events' types: the next-action prior
    st.done("vocab_write_counts")
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "counts": counts,
        "rows": rows,
        "quarantine": quarantine,
        "users": users_counts,
        "vocab": {"num_items": int(max_item) + 1, "num_event_types": num_event_types(d.event_types),
                  "num_categories": n_cats + 1, "event_types": ["<pad>"] + list(d.event_types),
                  "items_in_vocab": int(max_item) - 1, "catalog_only_items": catalog_only},
        "split": {"kind": d.split, "baskets": baskets, "cutoff": d.cutoff, "horizon_days": d.horizon_days,
                  "cutoff_ts": d.cutoff_ts, "valid_cutoff_ts": decay_ends.get("decay_valid"),
                  "max_len": rule.max_len, "stride": rule.stride,
                  "cold_items": {"fraction": d.cold_items, "items_held_out": int(cold_items)},
                  "cold_users": {"fraction": d.cold_users, "users_held_out": int(cold_users)}},
        "time_range": {"first_ts": int(agg["first_ts"]), "last_ts": int(agg["last_ts"])},
        "files": {s: d.num_files for s in written},
        "stage_seconds": st.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark_jobs/etl.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    inputs = input_fingerprints(args)  # a missing or unreadable input fails here, before Spark starts
    spark = get_spark_for(cfg, args.master)
    try:
        m = run_etl(spark, args, cfg, inputs)
    except Exception as exc:
        # a lost connection to the JVM: did it end (out of memory)? Other errors leave it running.
        lost = isinstance(exc, (ConnectionError, EOFError)) or type(exc).__module__.startswith(("py4j", "pyspark"))
        code = jvm_exit_code(wait_s=30) if lost else None
        if code is None:
            raise
        raise SparkJvmExited(code, cfg.data.spark_driver_memory) from exc
    finally:
        if jvm_exit_code() is None:
            spark.stop()
    c = m["counts"]
    print(f"etl: {c['rows_in']} rows in, {c['rows_quarantined']} quarantined, {c['rows_deduplicated']} duplicates, "
          f"{c['users']} users; train/valid/test rows {m['rows']['train']}/{m['rows']['valid']}/"
          f"{m['rows']['test']}; {m['wall_time_s']:.1f}s -> {storage.normalize(args.output)}")
    return 0


def get_spark_for(cfg: Config, master: str | None = None) -> SparkSession:
    return get_spark("interest-etl", cfg.data.shuffle_partitions, cfg.data.spark_driver_memory, master,
                     cfg.data.spark_offheap_memory)


if __name__ == "__main__":
    sys.exit(main())
