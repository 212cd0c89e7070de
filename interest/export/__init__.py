"""`interest export --run RUN --output DIR`: user profiles, segments and model files for downstream use.

DIR/profiles/         Parquet parts, one row per user with a test row (interest.profiles.PROFILE_SCHEMA), written
                      by Ray Data actors, or by this process for a small export without a cluster
                      (interest.export.batch.scores_in_driver); with drift rows, the interest-migration fields
                      (interest.migration_profiles; drift_latent and migration_time with --latent)
DIR/segments.parquet  one row per k-means segment (interest.export.segments.SEGMENT_SCHEMA)
DIR/reengage.parquet  decay head only: users likely to lapse, with items to win them back (interest.reengage)
DIR/model/            the model for serving without Spark or Ray (interest.model_files): model.safetensors,
                      user_encoder.onnx, meta.json, items.parquet; plus model.pt (the training state dict)
DIR/export.json       what was written: counts, the segment choice, a 2-D map of user embeddings, a sample of
                      profiles (pseudonyms only); also copied to RUN/export.json for `interest report`
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from interest import decay_scores
from interest.migration_profiles import FIT_ROWS
from interest.migration_profiles import fit_settings as fit_migration
from interest.model_files import write_model_files
from interest.profiles import ProfileScorer, settings_from
from interest_core.batches import iter_batches, read_head, row_batches
from interest_core.config import config_from_dict
from interest_core.contract import EVAL_COLUMNS, check_same_data, load_manifest, split_files
from interest_core.data_versions import readable_data_dir
from interest_core.memory import peak_rss_mb
from interest_core.modelargs import SEQUENCE_ARCHS
from ray_train.local_instance import own_instance

from .batch import init_ray, scores_in_driver, write_profiles, write_reengage
from .segments import embedding_map, fit_segments, summarize

SCALE_FIT_ROWS = 200_000  # decay_valid users the hazard calibration is fitted on
PROFILE_SAMPLE = 10
SAMPLE_COLUMNS = ["user_id", "n_events", "interest_tags", "top_item_ids", "p_buy_next", "segment", "churn_risk",
                  "migrated", "categories_before", "categories_after"]


def export_run(run_dir: str | Path, out_dir: str | Path, top_k: int | None = None, segments: int | str | None = None,
               reengage_below: float | None = None, address: str | None = None,
               latent_run: str | Path | None = None) -> dict:
    """Writes DIR (module docstring); returns export.json's content. None arguments take the run's export config;
    latent_run: a `--model vae` run on the same data, whose posteriors give the profiles' drift_latent."""
    run_dir, out = Path(run_dir).resolve(), Path(out_dir).resolve()
    run = json.loads((run_dir / "run.json").read_text())
    data_dir = readable_data_dir(run["data_dir"])
    manifest = load_manifest(data_dir)
    check_same_data(run, data_dir, manifest, explicit=False)
    horizon = float(manifest["split"]["horizon_days"])
    cfg = config_from_dict(run["config"])
    if cfg.model.arch not in SEQUENCE_ARCHS:
        raise ValueError(f"{run_dir} holds a {cfg.model.arch} model: `interest export` serves the sequence models "
                         f"({', '.join(SEQUENCE_ARCHS)}), whose user embedding scores items by a dot product; export "
                         f"a run trained with --model {' or '.join(SEQUENCE_ARCHS)}")
    updates = {k: v for k, v in (("top_k", top_k), ("segments", segments), ("reengage_below", reengage_below))
               if v is not None}
    e = cfg.export.model_copy(update=updates)
    cfg = cfg.model_copy(update={"export": type(e).model_validate(e.model_dump())})
    e = cfg.export
    timings: dict[str, float] = {}
    peak_rss: dict[str, float] = {}  # the driver's peak RSS so far, after each stage: which stage grows it
    t0 = time.perf_counter()
    scorer = ProfileScorer(run_dir, data_dir, settings_from(cfg, horizon))
    model, max_len = scorer.model, scorer.max_len
    peak_rss["model_loaded"] = peak_rss_mb()
    scale = decay_scores.hazard_scale(model, data_dir, horizon, max_len, e.batch_size, max_rows=SCALE_FIT_ROWS)
    peak_rss["decay_calibrated"] = peak_rss_mb()
    # Segments: fit on a sample of users on the driver; every user is assigned inside the batch export.
    sample = read_head(split_files(data_dir, "test"), EVAL_COLUMNS, e.segment_sample).to_pydict()
    emb = np.concatenate([scorer.embed(part) for _, part in row_batches(sample, e.batch_size)] or
                         [np.zeros((0, model.args.dim), np.float32)])
    peak_rss["sample_embedded"] = peak_rss_mb()
    segmenter, seg_record = fit_segments(emb, e.segments, e.max_segments, cfg.train.seed)
    peak_rss["segments_fitted"] = peak_rss_mb()
    migration = fit_migration(data_dir, cfg.migration, model, latent_run, e.batch_size)
    peak_rss["migration_fitted"] = peak_rss_mb()
    settings = dataclasses.replace(scorer.s, hazard_scale=scale, segmenter=segmenter, migration=migration)

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("profiles", "profiles.parquet", "reengage.parquet", "segments.parquet"):
        p = out / stale
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    timings["fit_segments_s"] = time.perf_counter() - t0
    peak_rss["before_ray"] = peak_rss_mb()  # model, k-means sample and decay calibration loaded
    in_driver = scores_in_driver(address, e.actors, int(manifest["rows"]["test"]))
    # Ray only for a cluster, export.actors or many users; a local instance it started is shut down at the end
    with contextlib.nullcontext() if in_driver else own_instance(init_ray(address, e.actors or 1)):
        t0 = time.perf_counter()
        n_profiles = write_profiles(run_dir, data_dir, settings, out / "profiles", e.actors, in_driver)
        timings["profiles_s"] = time.perf_counter() - t0
        peak_rss["after_profiles"] = peak_rss_mb()
        n_reengage = None
        if scale is not None and (data_dir / "decay_test").is_dir():
            t0 = time.perf_counter()
            n_reengage = write_reengage(run_dir, data_dir, settings, out / "reengage.parquet", e.actors, in_driver)
            timings["reengage_s"] = time.perf_counter() - t0
            peak_rss["after_reengage"] = peak_rss_mb()
    t0 = time.perf_counter()
    profile_files = sorted(str(f) for f in (out / "profiles").glob("*.parquet"))
    if segmenter is not None and n_profiles:
        last_ts = int(manifest["time_range"]["last_ts"])
        pq.write_table(summarize(out / "profiles", segmenter.cluster_centers_, last_ts), out / "segments.parquet")
    timings["segments_summary_s"] = time.perf_counter() - t0
    peak_rss["after_segments"] = peak_rss_mb()
    items = pq.read_table(data_dir / "items")
    meta = json.loads((run_dir / "model" / "meta.json").read_text())
    model_out = out / "model"
    shutil.rmtree(model_out, ignore_errors=True)
    model_info = write_model_files(model, meta, items, model_out)
    shutil.copy2(run_dir / "model" / "model.pt", model_out / "model.pt")
    labels = segmenter.predict(emb.astype(np.float64)) if segmenter is not None else np.zeros(len(emb), np.int64)
    sample_rows = read_head(profile_files, SAMPLE_COLUMNS, PROFILE_SAMPLE) if n_profiles else None
    summary = {
        "output": str(out), "profiles": n_profiles, "reengage": n_reengage, "segments": seg_record,
        "hazard_scale": scale, "settings": {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
                                            if f.name not in ("segmenter", "migration")},
        "migration": None if migration is None else {
            "flag": dataclasses.asdict(migration.rule), "latent_run": migration.latent_run,
            "window_days": migration.cfg.window_days, "fitted_on_rows": FIT_ROWS},
        "embedding_map": embedding_map(emb, labels, cfg.train.seed) if segmenter is not None else None,
        "profile_sample": sample_rows.to_pylist() if sample_rows is not None else [], "model": model_info,
        "content": content_summary(run, items, profile_files),
        "scored_by": "driver" if in_driver else "ray_data_actors",
        "timings": {k: round(v, 3) for k, v in timings.items()}, "users_per_s": n_profiles / max(timings["profiles_s"], 1e-9),
        # the driver's own peak (Ray's actors are other processes): flat in the number of users by design
        "driver_peak_rss_mb": peak_rss_mb(), "driver_peak_rss_mb_by_stage": peak_rss,
    }
    text = json.dumps(summary, indent=2, default=float)
    (out / "export.json").write_text(text)
    (run_dir / "export.json").write_text(text)
    return summary


def content_summary(run: dict, items, profile_files: list[str]) -> dict:
    """How the item representation reaches the profiles: the run's content features and the recommendations of items
    without training events (new items, the --cold-items holdout), which only content can rank."""
    idx = items.column("item_idx").to_numpy()
    unseen = np.zeros(int(idx.max()) + 1 if len(idx) else 1, dtype=bool)
    unseen[idx] = items.column("train_count").to_numpy() == 0
    slots = cold = 0
    cold_items: set[int] = set()
    for b in iter_batches(profile_files, ["top_items"]):
        top = b.column(0).flatten().to_numpy()
        slots += len(top)
        hit = top[unseen[top]]
        cold += len(hit)
        cold_items.update(hit.tolist())
    return {"item_features": (run.get("content") or {}).get("item_features", []),
            "text_model": ((run.get("content") or {}).get("text") or {}).get("model"),
            "items_without_training_events": int(unseen.sum()), "recommended_slots": slots,
            "cold_item_share_of_recommendations": cold / slots if slots else None,
            "cold_items_recommended": len(cold_items)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="trained run directory, e.g. --run runs/r1")
    p.add_argument("--output", required=True, help="export directory, e.g. --output exports/r1")
    p.add_argument("--top-k", type=int, default=None,
                   help="recommendations per user (default: export.top_k of the run's config), e.g. --top-k 50")
    p.add_argument("--segments", default=None,
                   help="k-means segments over user embeddings: a number or auto (silhouette; default: "
                        "export.segments), e.g. --segments 12")
    p.add_argument("--reengage-below", type=float, default=None,
                   help="re-engagement list: users whose P(active within the horizon) is below this (default: "
                        "export.reengage_below), e.g. --reengage-below 0.3")
    p.add_argument("--latent", default=None,
                   help="a run of `interest train --model vae` on the same data: the profiles gain its latent drift "
                        "and migration time, and the migrated flag uses it, e.g. --latent runs/vae")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: $RAY_ADDRESS, else a new local instance), e.g. --address auto")


def run(args: argparse.Namespace) -> int:
    if args.reengage_below is not None and not 0 < args.reengage_below <= 1:
        raise SystemExit(f"--reengage-below {args.reengage_below}: give a probability in (0, 1], e.g. 0.3")
    segments = args.segments
    if segments is not None and segments != "auto":
        if not segments.isdigit() or int(segments) < 1:
            raise SystemExit(f"--segments {segments}: give a positive number of segments or auto, e.g. 8")
        segments = int(segments)
    s = export_run(args.run, args.output, args.top_k, segments, args.reengage_below, args.address, args.latent)
    out = Path(s["output"])
    seg = s["segments"]
    print(f"export: {s['profiles']:,} user profiles -> {out / 'profiles'}; {seg['k'] or 0} segments "
          f"({seg.get('chosen_by', 'none')}) -> {out / 'segments.parquet'}; model files -> {out / 'model'}")
    if s["reengage"] is not None:
        print(f"export: {s['reengage']:,} users to re-engage (P(active) < {s['settings']['reengage_below']:g}) -> "
              f"{out / 'reengage.parquet'}")
    return 0
