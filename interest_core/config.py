"""Typed configuration: presets shipped in this package (presets/*.yaml), overrides with ``--set section.key=value``.

Every field has a default that is good on MovieLens-, RetailRocket- and Taobao-sized data; the presets only
change sizes. Unknown keys are errors that name the key and the closest valid one; every setting is read by the
stage it names (data: the ETL, data_config.py; model/train: the trainer; eval: validation, evaluation and the
report; export: `interest export`, export_config.py; migration: interest migration, migration_config.py).
"""
from __future__ import annotations

import difflib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from interest_core.data_config import DataConfig
from interest_core.export_config import ExportConfig
from interest_core.migration_config import MigrationConfig

PRESETS = resources.files("interest_core") / "presets"
METRICS = ("hr", "ndcg", "mrr")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    arch: Literal["sasrec", "hstu", "gru", "vae"] = "sasrec"
    """Backbone: SASRec causal self-attention, HSTU pointwise attention with relative bias, gru: a GRU4Rec-style
    recurrent network (n_layers GRU layers of width dim), or vae: a Mult-VAE
    latent interest model over the bag of a window's items (Liang et al. 2018; dim = the latent size)."""
    dim: int = Field(64, ge=8)
    """Embedding / hidden size."""
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    ffn_mult: int | None = Field(None, ge=1)
    """SASRec feed-forward width as a multiple of dim (1 = the SASRec paper, 4 = BERT-style); None = recipe."""
    ffn_activation: Literal["relu", "gelu"] | None = None
    """SASRec feed-forward activation; None = recipe."""
    norm: Literal["pre", "post"] | None = None
    """SASRec LayerNorm placement: before each sub-layer (pre-LN) or after each residual sum (post-LN, BERT);
    None = recipe."""
    scale_embeddings: bool | None = None
    """Multiply item embeddings by sqrt(dim) before adding position, time and event-type embeddings; None = recipe."""
    position_anchor: Literal["end", "start"] = "end"
    """Position ids count from the sequence's end (0 = most recent event) or from its start (0 = oldest shown)."""
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    """Dropout on embeddings and in every block; None = recipe."""
    loss: Literal["auto", "full", "sampled"] = "auto"
    """auto = full softmax CE up to full_softmax_max_items, sampled softmax above."""
    full_softmax_max_items: int = Field(200_000, ge=1)
    num_negatives: int = Field(256, ge=1)
    """Uniform negatives per batch for the sampled softmax (plus in-batch negatives)."""
    event_type_loss_weight: float = Field(0.1, ge=0.0)
    """Weight of the next-event-type head's cross-entropy (0 switches it off)."""
    decay_loss_weight: float = Field(0.1, ge=0.0)
    """Weight of the survival (interest decay) head's censored likelihood (0 switches it off). The head is built
    on time-split data only: censoring (no event up to the end of observation) is known there."""
    decay_refit_epochs: int = Field(200, ge=0)
    """After training, the survival head is refitted on the chosen (frozen) encoder for at most this many epochs
    over a sample of training positions, keeping the epoch with the best decay_valid log loss (0 = no refit)."""
    decay_refit_positions: int = Field(1_000_000, ge=1)
    """Scored training positions in the refit's sample (their hidden states are held in memory: N x dim floats)."""
    vae_hidden: int = Field(600, ge=8)
    """vae: width of the encoder's and the decoder's hidden layer (the paper's 600)."""
    vae_beta: float = Field(0.2, ge=0.0)
    """vae: the KL term's weight after annealing (the paper's best beta on ML-20M)."""
    vae_categories: bool = False
    """vae: a bag holds its items' known categories too, and the decoder reconstructs both. Off: on the synthetic
    validation users the items-only latent separated migrators better (README: Interest migration)."""
    vae_anneal_steps: int = Field(2000, ge=0)
    """vae: optimizer steps over which the KL weight rises linearly from 0 to vae_beta (0 = vae_beta throughout)."""
    item_features: list[Literal["category", "brand", "price", "text"]] = []
    """Content tower (sasrec, hstu): an item's representation, at the input and in the output layer, is its ID
    embedding (items with training events only) plus embeddings of these features from items/: category, brand
    (hashed into brand_buckets), price bucket, and text = a learned projection of the item's frozen
    all-MiniLM-L6-v2 sentence embedding (title, description, category, brand; needs the [text] extra). Items never
    seen in training are then ranked by their content. [] = ID only."""
    brand_buckets: int = Field(4096, ge=1)
    """Content tower: brands are hashed into this many embedding rows (no brand vocabulary to keep in sync)."""
    graph_hops: int = Field(0, ge=0, le=3)
    """Item-graph fusion (sasrec, hstu, gru): item rows gain a LightGCN-style mean of 1..graph_hops propagation
    steps over the ETL's top-K co-occurrence graph (graph/, training events only), added through a learned gate,
    at the input and in the output layer. 0 = off."""
    graph_sample: int | None = Field(None, ge=1)
    """Item-graph fusion, training only: neighbours sampled per item per step (None = all data.graph_top_k), for
    large catalogs."""
    graph_self_loop: bool = True
    """Item-graph fusion: propagate with self-loops, (A + I) / 2 for items with edges and I for items without (GCN's
    renormalization), so an item without edges (a new or held-out item) keeps its own row in the aggregate and its
    fused row stays on the scale of the others'. False = A alone (LightGCN): items without edges aggregate 0."""
    id_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Content tower, training only: the share of item occurrences whose ID embedding is dropped, so the model
    also learns to rank items from their content alone (as it must for items without training events)."""

    user_features: bool = False
    """User side features (sasrec, hstu, gru; data built with `interest etl --users FILE`): the sum of the user's
    age-group, gender, occupation and region embeddings is added to the sequence state, so a user with 0-3 events
    is scored from what is known of them besides their events (a user with no event: from it alone)."""

    @model_validator(mode="after")
    def _vae_full_softmax(self) -> "ModelConfig":
        if self.arch == "vae" and self.loss == "sampled":
            raise ValueError("model.arch=vae is a multinomial likelihood over the whole catalog: model.loss=sampled "
                             "does not apply; use model.loss=auto or full")
        if self.arch == "vae" and self.user_features:
            raise ValueError("model.user_features is the sequence models' user side; set model.user_features=false "
                             "for model.arch=vae")
        if self.arch == "vae" and self.graph_hops:
            raise ValueError("model.graph_hops is the sequence models' item-graph fusion; set model.graph_hops=0 "
                             "for model.arch=vae")
        if self.arch == "vae" and self.item_features:
            raise ValueError(f"model.item_features={self.item_features} is the sequence models' content tower; "
                             "model.arch=vae reads item ids (and model.vae_categories): set model.item_features=[]")
        if self.dim % self.n_heads:
            options = ", ".join(str(h) for h in range(1, self.dim + 1) if self.dim % h == 0 and h <= 16)
            raise ValueError(f"model.dim={self.dim} is not divisible by model.n_heads={self.n_heads}: choose "
                             f"model.n_heads among {options} (or another model.dim)")
        if len(set(self.item_features)) != len(self.item_features):
            raise ValueError(f"model.item_features={self.item_features} repeats a feature")
        return self


class TrainConfig(_Strict):
    workers: int = Field(2, ge=1)
    """Ray Train workers (one DeepSpeed rank each)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    epochs: int = Field(200, ge=1)
    """Upper bound of passes over the train split; early stopping on validation ends sooner."""
    micro_batch_size: int = Field(128, ge=1)
    """Sequences per rank per step."""
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    adam_beta2: float | None = Field(None, gt=0, lt=1)
    """AdamW's second-moment decay (beta1 is 0.9); None = recipe."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After warmup: constant (the SASRec/HSTU reference recipe; early stopping decides the length) or cosine
    decay to min_lr_ratio over all `epochs` (for a fixed budget)."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Linear warmup over this fraction of the total steps, capped at warmup_max_steps."""
    warmup_max_steps: int = Field(1000, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, ge=0)
    early_stopping_patience: int = Field(10, ge=1)
    """Validations without a better eval.select score before training stops."""
    val_every_steps: int | None = Field(None, ge=1)
    """Optimizer steps between validations (each one checkpoints); None = one epoch, clamped to [50, 1000] steps."""
    seed: int = 42
    max_failures: int = Field(3, ge=-1)
    """Worker-group restarts after a worker or its node dies, each from the latest complete checkpoint (-1 =
    unlimited, 0 = the first failure ends the run)."""
    keep_checkpoints: int = Field(2, ge=1)
    activation_checkpointing: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    ray_num_cpus: int | None = None
    """Logical CPUs for a local Ray instance; None = max(cores, workers * cpus_per_worker + 2)."""
    max_steps_per_epoch: int | None = Field(None, ge=1)
    """Cap on steps per epoch (smoke tests); None = a full pass."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI (e.g. http://mlflow:5000); rank 0 logs the config as params and loss, seq/s and
    validation NDCG@10 per epoch to experiment `interest-trainer` (mlflow-skinny is in requirements.lock)."""
    use_gpu: bool | None = None
    """None = use GPUs when the Ray cluster has them."""
    materialize_max_mb: int = Field(512, ge=0)
    """Train shards up to this many MB on disk are read once into Ray's object store; larger ones stream from
    storage every epoch (re-reading a small data set each epoch costs more than training on it)."""
    progress: Literal["auto", "bar", "lines"] = "auto"
    """Driver progress: a tqdm bar (step, loss, seq/s, lr, epoch summaries), rank 0's printed lines, or auto =
    the bar when the driver's stderr is a terminal, lines otherwise (logs, `ray job submit`)."""
    log_every_steps: int = Field(20, ge=1)
    """Progress line and loss-curve point every N optimizer steps."""
    text_cache_dir: str | None = None
    """Where the item text embeddings are cached (Parquet keyed by item id and text hash; shared by runs and
    catalog snapshots, only new or changed texts are encoded). None = RUN/text_cache."""


class EvalConfig(_Strict):
    ks: list[int] = [5, 10, 20, 50]
    """Cut-offs K of every reported metric (hr@K, ndcg@K, mrr@K)."""
    sampled_negatives: int = Field(100, ge=1)
    negatives_seed: int = 2024
    recent_popularity_days: float = Field(7.0, gt=0)
    batch_size: int = Field(512, ge=1)
    """Users scored per batch in full-ranking evaluation."""
    select_protocol: Literal["full", "full_exclude_seen"] | None = None
    """Protocol whose validation `select` metric drives checkpoint selection and early stopping; None = recipe: full
    for the sequence models, full_exclude_seen for the Mult-VAE (a bag model reconstructs its input, so under full
    its validation falls as it learns and early stopping would keep an untrained model; docs/training-defaults.md)."""
    select: str = "ndcg@10"
    """Validation metric that selects the checkpoint and stops training early: hr@K, ndcg@K or mrr@K, K in ks."""
    max_valid_users: int | None = Field(50_000, ge=1)
    """Validation users scored each epoch (a fixed pseudo-random subset: rows are ordered by user hash)."""

    @model_validator(mode="after")
    def _select_in_ks(self) -> "EvalConfig":
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"eval.ks={self.ks}: give positive cut-offs, e.g. [5, 10, 20]")
        m = re.fullmatch(r"(hr|ndcg|mrr)@(\d+)", self.select)
        if m is None or int(m.group(2)) not in self.ks:
            options = ", ".join(f"{n}@{k}" for n in METRICS for k in self.ks)
            raise ValueError(f"eval.select={self.select!r} is not a reported metric; choose one of {options} "
                             f"(or add its K to eval.ks)")
        return self

    @property
    def select_k(self) -> int:
        """The K of the selection metric (ndcg@10 -> 10)."""
        return int(self.select.split("@")[1])


class Config(_Strict):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    migration: MigrationConfig = MigrationConfig()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


# Each backbone's reference recipe, for the keys a config leaves at None. SASRec: the BERT-style block of the
# widely used reference trainer (post-LN, 4x GELU feed-forward, dropout 0.5, Adam beta2 0.999, unscaled
# embeddings), which beat the SASRec paper's block on MovieLens-100K validation (README: Recipe); HSTU: its paper's.
ARCH_RECIPES: dict[str, dict[str, Any]] = {
    "sasrec": {"model.dropout": 0.5, "model.ffn_mult": 4, "model.ffn_activation": "gelu", "model.norm": "post",
               "model.scale_embeddings": False, "train.adam_beta2": 0.999, "eval.select_protocol": "full"},
    # Mult-VAE: dropout is the encoder's input dropout (0.5 in the paper); the feed-forward keys are unused
    "vae": {"model.dropout": 0.5, "model.ffn_mult": 1, "model.ffn_activation": "relu", "model.norm": "pre",
            "model.scale_embeddings": False, "train.adam_beta2": 0.999, "eval.select_protocol": "full_exclude_seen"},
    # GRU4Rec: the widely used reference trainer's dropout 0.3 on the event embeddings (and between GRU layers);
    # the feed-forward and LayerNorm-placement keys are unused
    "gru": {"model.dropout": 0.3, "model.ffn_mult": 1, "model.ffn_activation": "relu", "model.norm": "pre",
            "model.scale_embeddings": False, "train.adam_beta2": 0.999, "eval.select_protocol": "full"},
    "hstu": {"model.dropout": 0.2, "model.ffn_mult": 1, "model.ffn_activation": "relu", "model.norm": "pre",
             "model.scale_embeddings": True, "train.adam_beta2": 0.98, "eval.select_protocol": "full"},
}


_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_uri(value: str) -> str:
    """scheme://user:password@host/... -> scheme://***@host/...: credentials never reach a file, log or report."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", value)


def redacted(config: Any) -> Any:
    """A config dict (or any JSON value) with the credentials of every URI in it redacted (redact_uri)."""
    if isinstance(config, dict):
        return {k: redacted(v) for k, v in config.items()}
    if isinstance(config, list):
        return [redacted(v) for v in config]
    return redact_uri(config) if isinstance(config, str) else config


def _apply_recipe(cfg: Config) -> Config:
    """Fills the keys left at None from the chosen backbone's recipe (explicit settings always win)."""
    for key, value in ARCH_RECIPES[cfg.model.arch].items():
        section, name = key.split(".")
        part = getattr(cfg, section)
        if getattr(part, name) is None:
            setattr(part, name, value)
    return cfg


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _valid_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _check_unknown(raw: dict, model: type[BaseModel], prefix: str = "") -> None:
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in model.model_fields:
            close = difflib.get_close_matches(full, _valid_keys(Config), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{full}'{hint} (valid keys: `interest train --help`)")
        ann = model.model_fields[key].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"config section '{full}' must be a mapping, got {value!r}")
            _check_unknown(value, ann, f"{full}.")


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars/lists) to a raw dict."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.lr=0.002")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            close = difflib.get_close_matches(key, _valid_keys(Config), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"--set {item!r}: key must be section.key{hint}")
        raw.setdefault(parts[0], {})
        if not isinstance(raw[parts[0]], dict):
            raise ConfigError(f"--set {item!r}: '{parts[0]}' is not a section")
        raw[parts[0]][parts[1]] = _parse_value(value)
    return raw


def preset_names() -> list[str]:
    return sorted(f.name[:-len(".yaml")] for f in PRESETS.iterdir() if f.name.endswith(".yaml"))


def _preset_text(name_or_path: str) -> tuple[str, str]:
    """(source description, YAML text) of a YAML file path or a preset name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return str(p), p.read_text()
    candidate = PRESETS / f"{name_or_path}.yaml"
    if candidate.is_file():
        return f"preset {name_or_path}", candidate.read_text()
    names = preset_names()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"config {name_or_path!r} is neither a YAML file nor a preset{hint} (presets: {names})")


def load_raw(name_or_path: str | None) -> dict:
    if name_or_path is None:
        return {}
    path, text = _preset_text(name_or_path)
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections (data, model, train, eval, export, "
                          "migration)")
    base = raw.pop("extends", None)
    if base is not None:
        merged = load_raw(base)
        for section, values in raw.items():
            if isinstance(values, dict) and isinstance(merged.get(section), dict):
                merged[section].update(values)
            else:
                merged[section] = values
        raw = merged
    return raw


def build_config(raw: dict) -> Config:
    _check_unknown(raw, Config)
    try:
        return _apply_recipe(Config.model_validate(raw))
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            if err["type"] == "value_error":  # a check across fields: its message names the keys
                msgs.append(err["msg"].removeprefix("Value error, "))
                continue
            loc = ".".join(str(x) for x in err["loc"])
            msgs.append(f"{loc}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("invalid config: " + "; ".join(msgs)) from None


def load_config(name_or_path: str | None = None, overrides: list[str] | None = None) -> Config:
    """Preset or YAML file, then ``--set`` overrides, validated."""
    raw = load_raw(name_or_path)
    return build_config(apply_overrides(raw, overrides or []))


def config_from_dict(d: dict) -> Config:
    return build_config(json.loads(json.dumps(d)))
