"""Serving files of a trained model, and a recommender that reads them with ONNX Runtime (no torch, Ray or Spark).

write_model_files(model, meta, items_table, out_dir) writes:
  model.safetensors   the state dict (safetensors.torch.save_model: tied tensors stored once); load_torch_model()
                      rebuilds the InterestModel from it and meta.json
  meta.json           the run's meta: model_args (ModelArgs kwargs), vocab (event_types[0] = "<pad>"), ...
  items.parquet       contract.ITEMS_SCHEMA: item_idx <-> item_id (the catalog's id) and features
  user_encoder.onnx   (items, event_types, ts) int64 (B, L), left-padded, 1 <= L <= max_len
                      [+ user_features int64 (B, F) for a model with user side features, F = len(USER_FIELDS)]
                      -> user_embedding float32 (B, D) = InterestModel.user_embedding; B and L dynamic.
                      user_encoder.pt (TorchScript, same signature) instead when the ONNX export fails
  export.json         what was written: encoder format / exporter / opset, the max |ONNX - PyTorch| measured at
                      export on random batches, the item embedding's tensor name in model.safetensors
Scores are user_embedding @ item_embedding.T over the (V, D) tensor `export.json["item_embedding"]["tensor"]` of
model.safetensors, with ids 0 (padding) and 1 (OOV) never recommended: InterestModel.scores.
"""
from __future__ import annotations

import json
import logging
import traceback
import warnings
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from interest_core.contract import OOV_ID, PAD_ID
from interest_core.user_features import USER_FIELDS, age_group, feature_id, region_value

INPUTS = ("items", "event_types", "ts")
OUTPUT = "user_embedding"
ONNX_OPSET = 18
TOLERANCE = 1e-3  # max |exported - PyTorch| accepted at export
Event = tuple[str, str, int | float | str]  # (item_id, event_type name, ts: unix seconds or ISO 8601)
Encoder = Callable[..., np.ndarray]  # the input arrays in encoder_inputs() order -> (B, D)


def encoder_inputs(args: Any) -> tuple[str, ...]:
    """The user encoder's input names: INPUTS, and user_features for a model with user side features."""
    return INPUTS + (("user_features",) if getattr(args, "user_feature_buckets", 0) else ())


def user_feature_ids(user: dict | None, buckets: int) -> list[int]:
    """A served user's side features ({"age": 25, "gender": "F", "occupation": ..., "region": "10001"}; missing
    keys and None unknown) -> ids in USER_FIELDS order, as the ETL computes them (interest_core.user_features)."""
    user = user or {}
    unknown = set(user) - set(USER_FIELDS)
    if unknown:
        raise ValueError(f"unknown user feature(s) {sorted(unknown)}: the model reads {', '.join(USER_FIELDS)}")
    out = []
    for name in USER_FIELDS:
        value = user.get(name)
        if value is not None and str(value).strip():
            if name == "age":
                try:
                    value = age_group(float(value))
                except ValueError:
                    raise ValueError(f"age {value!r} is not a number (e.g. 34)") from None
            elif name == "region":
                value = region_value(str(value))
        out.append(feature_id(name, None if value is None else str(value), buckets))
    return out


def write_model_files(model: Any, meta: dict, items_table: pa.Table, out_dir: Path) -> dict:
    """Write the files above for an InterestModel (its train/eval mode is kept); returns export.json's content.
    meta.json is `meta` with model_args set to the model's own (what rebuilds it); meta needs vocab.event_types."""
    import safetensors.torch
    import torch

    if not meta.get("vocab", {}).get("event_types"):
        raise ValueError("meta has no vocab.event_types (the names of event-type ids 0.., '<pad>' first): pass the "
                         "run's meta.json")
    if not {"item_idx", "item_id"} <= set(items_table.column_names):
        raise ValueError(f"items table has columns {items_table.column_names}: needs item_idx and item_id")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        safetensors.torch.save_model(model, str(out_dir / "model.safetensors"))
        (out_dir / "meta.json").write_text(json.dumps(meta | {"model_args": asdict(model.args)}, indent=2))
        pq.write_table(items_table, out_dir / "items.parquet")
        encoder = _user_encoder(model)
        try:
            info = _export_onnx(encoder, model.args, out_dir)
        except Exception as exc:  # any exporter / runtime failure: fall back to TorchScript, say why
            info = _export_torchscript(encoder, model.args, out_dir)
            info["onnx_error"] = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
    finally:
        model.train(was_training)
    with torch.no_grad():
        item_emb = model.item_emb
    names = [n for n, t in model.state_dict(keep_vars=True).items() if t is item_emb]
    with safetensors.safe_open(str(out_dir / "model.safetensors"), framework="numpy") as f:
        tensor = next((n for n in names if n in f.keys()), None)
    file = "model.safetensors"
    if tensor is None:  # the content tower computes the item rows: store them as a tensor of their own
        file, tensor = "item_embedding.safetensors", "item_embedding"
        safetensors.torch.save_file({tensor: item_emb.detach().contiguous()}, str(out_dir / file))
    info |= {"item_embedding": {"file": file, "tensor": tensor, "shape": list(item_emb.shape)},
             "weights": "model.safetensors", "torch_version": torch.__version__}
    (out_dir / "export.json").write_text(json.dumps(info, indent=2))
    return info


def load_torch_model(model_dir: str | Path) -> tuple[Any, dict]:
    """(InterestModel in eval mode, meta) from model.safetensors + meta.json of a write_model_files directory."""
    import safetensors.torch

    from interest_core.modelargs import ModelArgs
    from ray_train.models import InterestModel

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "meta.json").read_text())
    model = InterestModel(ModelArgs(**meta["model_args"]))
    safetensors.torch.load_model(model, str(model_dir / "model.safetensors"))
    return model.eval(), meta


def _user_encoder(model: Any) -> Any:
    """nn.Module (items, event_types, ts) int64 (B, L) [, user_features (B, F)] -> (B, D) float32 =
    model.user_embedding (what encode reads)."""
    import torch

    class UserEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, items: torch.Tensor, event_types: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            return self.model.user_embedding({"items": items, "event_types": event_types, "ts": ts})

    class UserEncoderWithFeatures(UserEncoder):
        def forward(self, items: torch.Tensor, event_types: torch.Tensor, ts: torch.Tensor,
                    user_features: torch.Tensor) -> torch.Tensor:
            return self.model.user_embedding({"items": items, "event_types": event_types, "ts": ts,
                                              "user_features": user_features})

    return (UserEncoderWithFeatures() if len(encoder_inputs(model.args)) > len(INPUTS) else UserEncoder()).eval()


def random_inputs(args: Any, batch: int, length: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random left-padded int64 (batch, length) encoder inputs: row b has b % length padded positions, OOV included
    (and random (batch, F) user feature ids, 0 = unknown included, for a model with user side features)."""
    rng = np.random.default_rng(seed)
    items = rng.integers(OOV_ID, args.num_items, (batch, length))
    types = rng.integers(1, args.num_event_types, (batch, length)) if args.num_event_types > 1 else 0 * items
    ts = 1_700_000_000 + np.cumsum(rng.integers(0, 200_000, (batch, length)), axis=1)
    valid = np.arange(length)[None, :] >= (np.arange(batch) % length)[:, None]
    out = (items * valid, types * valid, ts * valid)
    if len(encoder_inputs(args)) > len(INPUTS):
        out += (rng.integers(0, args.user_feature_buckets + 1, (batch, len(USER_FIELDS))),)
    return out


def _max_abs_diff(encoder: Any, run: Encoder, args: Any) -> tuple[float, list[list[int]]]:
    """max |run - encoder| over random batches of several (B, L), L up to max_len; raises above TOLERANCE."""
    import torch

    shapes = sorted({(1, 1), (2, max(1, args.max_len // 2)), (5, args.max_len)})
    worst = 0.0
    for i, (b, length) in enumerate(shapes):
        x = random_inputs(args, b, length, seed=i)
        with torch.no_grad():
            ref = encoder(*(torch.from_numpy(a) for a in x)).numpy()
        worst = max(worst, float(np.abs(run(*x) - ref).max()))
    if not worst <= TOLERANCE:
        raise RuntimeError(f"exported encoder differs from PyTorch by {worst} > {TOLERANCE}")
    return worst, [list(s) for s in shapes]


def _export_onnx(encoder: Any, args: Any, out_dir: Path) -> dict:
    """torch.export-based ONNX export with dynamic batch and length, checked in ONNX Runtime (default options)."""
    import onnx
    import torch

    path = out_dir / "user_encoder.onnx"
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1, max=args.max_len)
    example = tuple(torch.from_numpy(a) for a in random_inputs(args, 3, args.max_len))
    names = encoder_inputs(args)
    dynamic = ({0: batch, 1: length},) * len(INPUTS) + ({0: batch},) * (len(names) - len(INPUTS))
    # torch.onnx: "torchvision is not installed"; onnxscript / onnx_ir: optimizer notes on the EmbeddingBag of user
    # side features ("Skipping constant folding ..."): nothing of ours, and the export is checked below
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    with warnings.catch_warnings():  # "axis name ... will not be used": it is (the graph's dims are batch, length)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch.export's own deprecations
        program = torch.onnx.export(encoder, example, dynamo=True, verbose=False, opset_version=ONNX_OPSET,
                                    input_names=list(names), output_names=[OUTPUT], dynamic_shapes=dynamic)
    for log, level in zip(loggers, levels):
        log.setLevel(level)
    program.save(str(path))
    proto = onnx.load(str(path), load_external_data=False)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    diff, shapes = _max_abs_diff(encoder, _onnx_encoder(path, names), args)
    (out_dir / "user_encoder.pt").unlink(missing_ok=True)
    return {"format": "onnx", "file": path.name, "exporter": "torch.onnx.export(dynamo=True)", "opset": opset,
            "inputs": list(names), "output": OUTPUT, "dynamic_axes": ["batch", "length"], "max_len": args.max_len,
            "max_abs_diff": diff, "checked_shapes": shapes}


def _export_torchscript(encoder: Any, args: Any, out_dir: Path) -> dict:
    """torch.jit.trace fallback (same signature; the trace keeps the batch and length dynamic), checked likewise."""
    import torch

    path = out_dir / "user_encoder.pt"
    example = tuple(torch.from_numpy(a) for a in random_inputs(args, 3, args.max_len))
    with torch.no_grad(), warnings.catch_warnings():  # shape-dependent Python values: checked below instead
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(encoder, example, check_trace=False)
    torch.jit.save(traced, str(path))
    diff, shapes = _max_abs_diff(encoder, _torchscript_encoder(path), args)
    for stale in out_dir.glob("user_encoder.onnx*"):  # the graph and any external data of an earlier export
        stale.unlink()
    return {"format": "torchscript", "file": path.name, "exporter": "torch.jit.trace", "opset": None,
            "inputs": list(encoder_inputs(args)), "output": OUTPUT, "dynamic_axes": ["batch", "length"], "max_len": args.max_len,
            "max_abs_diff": diff, "checked_shapes": shapes}


def _onnx_encoder(path: Path, names: Sequence[str] = INPUTS) -> Encoder:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda *arrays: session.run([OUTPUT], dict(zip(names, arrays)))[0]


def _torchscript_encoder(path: Path) -> Encoder:
    import torch

    module = torch.jit.load(str(path)).eval()

    def run(*arrays: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()

    return run


def parse_ts(value: int | float | str) -> int:
    """Unix seconds (int, float or their text) or an ISO 8601 time (naive = UTC) -> int unix seconds."""
    seconds: float | None = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = float(str(value).strip())
        except ValueError:
            try:
                t = datetime.fromisoformat(str(value).strip())
                seconds = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
            except ValueError:
                pass
    if seconds is None or not np.isfinite(seconds):
        raise ValueError(f"ts {value!r} is neither unix seconds nor an ISO 8601 time "
                         "(e.g. 1700000000 or 2024-01-31T12:00:00Z)")
    return int(np.floor(seconds))


class OnnxRecommender:
    """Top-K recommendations from a write_model_files directory with ONNX Runtime, numpy and pyarrow (torch only
    for a TorchScript encoder). A history is a sequence of Events; it is stably sorted by ts and its last max_len
    events are left-padded exactly like interest_core.batches.collate. Unknown item ids map to OOV (1)."""

    def __init__(self, model_dir: str | Path, batch_size: int = 256):
        from safetensors import safe_open

        model_dir = Path(model_dir)
        if not (model_dir / "export.json").exists():
            raise FileNotFoundError(f"{model_dir}/export.json missing: not a model directory written by "
                                    "`interest export` (e.g. --model exports/r1/model)")
        info = json.loads((model_dir / "export.json").read_text())
        meta = json.loads((model_dir / "meta.json").read_text())
        self.max_len: int = meta["model_args"]["max_len"]
        self.event_types: list[str] = list(meta["vocab"]["event_types"])  # id -> name, "<pad>" at 0
        self._type_ids = {name: i for i, name in enumerate(self.event_types) if i != PAD_ID}
        items = pq.read_table(model_dir / "items.parquet", columns=["item_idx", "item_id"]).to_pydict()
        self._item_idx = dict(zip(items["item_id"], items["item_idx"]))
        emb = info["item_embedding"]
        with safe_open(str(model_dir / emb["file"]), framework="numpy") as f:
            self.item_emb: np.ndarray = f.get_tensor(emb["tensor"]).astype(np.float32, copy=False)  # (V, D)
        self.item_ids = np.full(len(self.item_emb), None, dtype=object)  # item_idx -> item_id (None at 0, 1)
        self.item_ids[np.asarray(items["item_idx"], dtype=np.int64)] = items["item_id"]
        self._never = np.equal(self.item_ids, None)  # (V,) padding, OOV, ids the catalog does not name
        self._never[: OOV_ID + 1] = True
        self.input_names: tuple[str, ...] = tuple(info.get("inputs", INPUTS))
        self.user_buckets: int = meta["model_args"].get("user_feature_buckets", 0)
        self._encoder = (_onnx_encoder(model_dir / info["file"], self.input_names) if info["format"] == "onnx"
                         else _torchscript_encoder(model_dir / info["file"]))
        self.batch_size = batch_size

    def event_type_id(self, name: str) -> int:
        if name not in self._type_ids:
            raise ValueError(f"unknown event type {name!r}: the model knows {', '.join(self._type_ids)}")
        return self._type_ids[name]

    @property
    def reads_user_features(self) -> bool:
        return "user_features" in self.input_names

    def inputs(self, histories: Sequence[Sequence[Event]],
               users: Sequence[dict | None] | None = None) -> tuple[np.ndarray, ...]:
        """Histories -> (items, event_types, ts) int64 (B, L), L = min(max_len, longest history), left-padded; plus
        user_features (B, F) when the model reads them (users[i]: the i-th user's side features, None = unknown).
        An empty history is allowed only for a model with user side features: the user is then their features."""
        if users is not None and len(users) != len(histories):
            raise ValueError(f"{len(users)} users for {len(histories)} histories")
        rows = []
        for i, history in enumerate(histories):
            if not history and not self.reads_user_features:
                raise ValueError(f"history {i} is empty: a user needs at least one event (this model has no user "
                                 "side features to score a user without events)")
            events = sorted(((str(item), str(kind), parse_ts(t)) for item, kind, t in history), key=lambda e: e[2])
            rows.append(events[-self.max_len:])
        out = np.zeros((3, len(rows), max(max(map(len, rows), default=1), 1)), dtype=np.int64)
        for b, events in enumerate(rows):
            if events:
                out[:, b, out.shape[2] - len(events):] = [
                    [self._item_idx.get(item, OOV_ID) for item, _, _ in events],
                    [self.event_type_id(kind) for _, kind, _ in events], [t for _, _, t in events]]
        if not self.reads_user_features:
            return out[0], out[1], out[2]
        feats = np.array([user_feature_ids(u, self.user_buckets) for u in (users or [None] * len(rows))],
                         dtype=np.int64).reshape(len(rows), len(USER_FIELDS))
        return out[0], out[1], out[2], feats

    def embed(self, *arrays: np.ndarray) -> np.ndarray:
        """int64 inputs as collate makes them ((B, L) items, event_types, ts, L <= max_len [, (B, F) user_features])
        -> (B, D) float32 user embeddings."""
        return self._encoder(*(np.ascontiguousarray(a, dtype=np.int64) for a in arrays))

    def scores(self, user_emb: np.ndarray) -> np.ndarray:
        """(B, D) -> (B, V) scores; padding, OOV and ids missing from items.parquet at -inf (InterestModel.scores)."""
        scores = user_emb @ self.item_emb.T
        scores[:, self._never] = -np.inf
        return scores

    def recommend(self, histories: Sequence[Sequence[Event]], top_k: int = 10, exclude_seen: bool = False,
                  users: Sequence[dict | None] | None = None) -> list[tuple[list[str], list[float]]]:
        """Per history (item_ids, scores) of its top_k items by descending score (fewer if the catalog is smaller);
        exclude_seen drops every item of the history (also those before its last max_len events). users: each
        history's user side features (a model with user side features; see inputs)."""
        if top_k < 1:
            raise ValueError(f"top_k={top_k}: must be >= 1")
        out = []
        for start in range(0, len(histories), self.batch_size):
            batch = histories[start: start + self.batch_size]
            scores = self.scores(self.embed(*self.inputs(batch, None if users is None else
                                                          users[start: start + self.batch_size])))
            for row, history in zip(scores if exclude_seen else [], batch):
                row[[self._item_idx.get(str(item), OOV_ID) for item, _, _ in history]] = -np.inf
            k = min(top_k, scores.shape[1])
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for row, cand in zip(scores, top):
                cand = cand[np.argsort(-row[cand], kind="stable")]
                cand = cand[np.isfinite(row[cand])]
                out.append(([str(x) for x in self.item_ids[cand]], [float(x) for x in row[cand]]))
        return out
