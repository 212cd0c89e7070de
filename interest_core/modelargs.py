"""Model arguments: built once from the typed config, read by training, evaluation, export and the planner.

`ModelArgs` is what rebuilds a model (a checkpoint stores it as `model_args`); `model_args()` is the only place that
maps the config onto it. `count_params()` and `flops_per_token()` count a model from its arguments alone, so the
capacity planner needs no torch model (a test checks the count against the built model).
"""
from __future__ import annotations

from dataclasses import dataclass

from interest_core.config import Config
from interest_core.decay import NUM_DECAY_BUCKETS
from interest_core.item_features import ITEM_FEATURES, NUM_PRICE_BUCKETS, TEXT_DIM

DECAY_FEATURES = 4  # inputs of the decay head besides the hidden state (ray_train/models/heads.py)

RECENT_EVENTS = 8  # the next-action head reads the types and ages of this many most recent events


def action_embedding_dim(dim: int) -> int:
    """Width of the next-action head's embeddings (event type, age bucket, hour)."""
    return max(8, dim // 4)


NUM_TIME_BUCKETS = 32  # floor(log2(1 + dt seconds)) clamped to 31: bucket 31 starts at 2^31 s (68 years)
NUM_POS_BUCKETS = 32  # HSTU relative-position buckets: exact below 16, log-spaced up to max_len
ARCHS = ("sasrec", "hstu", "gru", "vae")
SEQUENCE_ARCHS = ("sasrec", "hstu", "gru")  # the sequence backbones; "vae" is the Mult-VAE bag model


@dataclass
class ModelArgs:
    num_items: int  # item vocabulary size incl. 0 = padding and 1 = OOV
    num_event_types: int  # event-type vocabulary incl. 0 = padding
    max_len: int = 50  # context length (longest sequence the position embedding covers)
    dim: int = 64  # embedding / hidden size D
    n_layers: int = 2  # number of backbone blocks
    n_heads: int = 2  # attention heads (dim must be divisible by it)
    dropout: float = 0.2  # dropout on embeddings and inside every block
    ffn_mult: int = 1  # SASRec feed-forward hidden width = ffn_mult * dim
    ffn_activation: str = "relu"  # SASRec feed-forward activation: "relu" | "gelu"
    norm: str = "pre"  # SASRec LayerNorm placement: "pre" | "post"
    scale_embeddings: bool = True  # item embeddings * sqrt(dim)
    position_anchor: str = "end"  # position ids count from the sequence's "end" (0 = most recent) or "start"
    event_type_input: bool = True  # embed each event's type (off when the data has one type only)
    arch: str = "sasrec"  # "sasrec" | "hstu" | "gru" | "vae"
    vae_hidden: int = 600  # vae: hidden width of encoder and decoder (dim = latent size)
    vae_beta: float = 0.2  # vae: KL weight after annealing
    vae_anneal_steps: int = 2000  # vae: steps of the linear KL warm-up from 0
    num_categories: int = 0  # category vocabulary incl. 0 = unknown when the model reads categories (vae bags,
    #                          the content tower's "category"), else 0
    item_features: tuple[str, ...] = ()  # content tower: subset of ("category", "brand", "price", "text")
    brand_buckets: int = 0  # content tower "brand": hashed brand rows (0 when brands are not read)
    id_dropout: float = 0.0  # content tower: share of item occurrences trained without their ID embedding
    graph_hops: int = 0  # item-graph fusion: propagation steps over the top-K graph (0 = off)
    graph_top_k: int = 20  # neighbour slots per item (the ETL's data.graph_top_k)
    graph_sample: int | None = None  # training: neighbours sampled per item per step (None = all K)
    graph_self_loop: bool = True  # propagate with (A + I) / 2 (I for items without edges) instead of A
    user_feature_buckets: int = 0  # user side features: hashed rows (the data's data.user_feature_buckets), 0 = off
    loss: str = "full"  # "full" | "sampled"   (model_args() resolves the config's "auto")
    num_negatives: int = 256  # uniform negatives per batch for the sampled softmax (plus in-batch ones)
    event_type_loss_weight: float = 0.1  # weight of the next-event-type head; 0 = head not built
    event_type_prior: list[float] | None = None  # share per event-type id among the data's events; None = even
    decay_loss_weight: float = 0.0  # weight of the survival head; 0 = head not built (needs time-split data)
    buy_event_type: int = 0  # event-type id of purchases (the decay head counts them), 0 = none
    decay_max_gap_s: float = 0.0  # longest gap training observes; the decay head extrapolates past it (0 = not)
    activation_checkpointing: bool = False  # recompute each block in backward (training only)

    def __post_init__(self):
        if self.num_items < 3:
            raise ValueError(f"num_items={self.num_items}: need ids 0 (padding), 1 (OOV) and at least one item")
        if self.num_event_types < 1:
            raise ValueError(f"num_event_types={self.num_event_types}: must include 0 = padding")
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r}: expected one of {ARCHS}")
        if self.arch == "vae" and self.loss != "full":
            raise ValueError("arch=vae: the multinomial likelihood is a full softmax over the catalog; "
                             "set model.loss=full (or auto)")
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"loss={self.loss!r}: expected 'full' or 'sampled' (resolve 'auto' before building)")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if min(self.max_len, self.n_layers, self.num_negatives) < 1:
            raise ValueError("max_len, n_layers and num_negatives must be >= 1")
        if self.position_anchor not in ("end", "start"):
            raise ValueError(f"position_anchor={self.position_anchor!r}: expected 'end' or 'start'")
        if self.norm not in ("pre", "post"):
            raise ValueError(f"norm={self.norm!r}: expected 'pre' or 'post'")
        if self.ffn_activation not in ("relu", "gelu") or self.ffn_mult < 1:
            raise ValueError(f"ffn_activation={self.ffn_activation!r}, ffn_mult={self.ffn_mult}: "
                             "expected relu or gelu, and ffn_mult >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout}: expected 0 <= dropout < 1")
        self.item_features = tuple(self.item_features)
        unknown = set(self.item_features) - set(ITEM_FEATURES)
        if unknown or (self.item_features and self.arch == "vae"):
            raise ValueError(f"item_features={self.item_features}: expected a subset of {ITEM_FEATURES}, "
                             "for the sequence models only")
        if "category" in self.item_features and self.num_categories < 2:
            raise ValueError("item_features has category but the data has no categories (num_categories < 2)")
        if "brand" in self.item_features and self.brand_buckets < 1:
            raise ValueError("item_features has brand: brand_buckets must be >= 1")
        if self.graph_hops and (self.arch == "vae" or self.graph_top_k < 1):
            raise ValueError(f"graph_hops={self.graph_hops}: the item-graph fusion needs a sequence model and "
                             f"graph_top_k >= 1 (got arch={self.arch}, graph_top_k={self.graph_top_k})")


def resolve_loss(cfg: Config, num_items: int) -> str:
    """model.loss=auto: the full softmax up to model.full_softmax_max_items items, the sampled one above."""
    m = cfg.model
    if m.arch == "vae":  # its multinomial likelihood (the config refuses loss=sampled with it)
        return "full"
    if m.loss != "auto":
        return m.loss
    return "full" if num_items <= m.full_softmax_max_items else "sampled"


def model_args(cfg: Config, num_items: int, num_event_types: int, max_len: int,
               event_types_seen: int | None = None, censoring_known: bool = True,
               decay_max_gap_s: float = 0.0, event_type_prior: list[float] | None = None,
               num_categories: int = 0, user_feature_buckets: int = 0) -> ModelArgs:
    """The model a config builds for a vocabulary and a context length (from the manifest, or planned).
    With one event type in the data (event_types_seen = 1) the event-type input and head are off: they would
    learn a constant. The decay head needs data whose training sequences end at a known end of observation
    (split=time, censoring_known); without it every gap would look observed and the head would learn a bias.
    decay_max_gap_s: the longest gap the training windows can hold (end of training observation - first event).
    event_type_prior: the share of each event type in the training events (the next-action head's logit adjustment).
    num_categories: the data's category vocabulary (incl. 0 = unknown), which the vae's bags include when
    model.vae_categories is on and the data has known categories. user_feature_buckets: the data's hashed user
    side-feature rows (its manifest's users.buckets), 0 when it has no users file; model.user_features needs them."""
    m = cfg.model
    if m.user_features and not user_feature_buckets:
        raise ValueError("model.user_features=true needs data with user side features: run `interest etl` with "
                         "--users FILE (or set model.user_features=false)")
    varied = event_types_seen is None or event_types_seen > 1
    heads = m.arch != "vae"  # the bag model has no per-event state for the next-action and decay heads
    return ModelArgs(num_items=num_items, num_event_types=num_event_types, max_len=max_len, dim=m.dim,
                     n_layers=m.n_layers, n_heads=m.n_heads, dropout=m.dropout, ffn_mult=m.ffn_mult,
                     ffn_activation=m.ffn_activation, norm=m.norm, scale_embeddings=m.scale_embeddings, arch=m.arch,
                     position_anchor=m.position_anchor, loss=resolve_loss(cfg, num_items),
                     num_negatives=m.num_negatives, event_type_loss_weight=m.event_type_loss_weight if varied and heads else 0.0,
                     event_type_prior=event_type_prior,
                     decay_loss_weight=m.decay_loss_weight if censoring_known and heads else 0.0,
                     buy_event_type=cfg.data.buy_event_type or 0, decay_max_gap_s=float(decay_max_gap_s),
                     event_type_input=varied, activation_checkpointing=cfg.train.activation_checkpointing,
                     vae_hidden=m.vae_hidden, vae_beta=m.vae_beta, vae_anneal_steps=m.vae_anneal_steps,
                     num_categories=num_categories if num_categories > 1 and (
                         (m.arch == "vae" and m.vae_categories) or "category" in m.item_features) else 0,
                     item_features=tuple(m.item_features),
                     brand_buckets=m.brand_buckets if "brand" in m.item_features else 0,
                     id_dropout=m.id_dropout if m.item_features else 0.0,
                     graph_hops=m.graph_hops, graph_top_k=cfg.data.graph_top_k, graph_sample=m.graph_sample,
                     graph_self_loop=m.graph_self_loop,
                     user_feature_buckets=user_feature_buckets if m.user_features else 0)


def event_types_seen(manifest: dict) -> int | None:
    """How many event types occur in the training events, the only ones the heads learn from (None without
    counts)."""
    counts = manifest["counts"].get("event_types_train")
    return None if counts is None else sum(1 for n in counts.values() if n > 0)


def model_args_for_data(cfg: Config, manifest: dict) -> ModelArgs:
    vocab, split = manifest["vocab"], manifest["split"]
    end, first = split.get("valid_cutoff_ts"), manifest.get("time_range", {}).get("first_ts")
    return model_args(cfg, vocab["num_items"], vocab["num_event_types"], split["max_len"],
                      event_types_seen(manifest), censoring_known=split.get("kind") == "time",
                      decay_max_gap_s=max(0, end - first) if end is not None and first is not None else 0.0,
                      event_type_prior=event_type_prior(manifest),
                      num_categories=vocab.get("num_categories", 0),
                      user_feature_buckets=(manifest.get("users") or {}).get("buckets", 0))


def event_type_prior(manifest: dict) -> list[float] | None:
    """Share of each event-type id among the training events ([0.0] for padding first), from the manifest's
    counts.event_types_train (never the valid or test periods' events, which the next-action head is scored on);
    None without those counts."""
    counts, names = manifest["counts"].get("event_types_train"), manifest["vocab"].get("event_types")
    if counts is None or names is None:
        return None
    total = sum(counts.values()) or 1
    return [0.0] + [counts.get(name, 0) / total for name in names[1:]]


def count_params(a: ModelArgs, non_embedding: bool = False) -> int:
    """Parameters of InterestModel(a), the tied item embedding once; non_embedding leaves out every embedding
    table (items, event types, positions, time gaps, HSTU's bias tables)."""
    d, f = a.dim, a.ffn_mult * a.dim
    if a.arch == "vae":  # encoder V (+ C) -> H -> 2D (mean, log-variance), decoder D -> H -> V (+ C), with biases
        v, h = a.num_items + a.num_categories, a.vae_hidden
        dense = (h + 1) * 2 * d + (d + 1) * h
        return dense if non_embedding else dense + v * h + h + (h + 1) * v
    embeddings = (a.num_items + a.num_event_types * a.event_type_input + a.max_len + NUM_TIME_BUCKETS + 2) * d
    if a.arch == "sasrec":
        # 2 LayerNorms, qkv (D x 3D), out proj (D x D), FFN D x F and F x D, all with biases
        block, block_tables = 4 * d * d + 2 * d * f + 9 * d + f, 0
    elif a.arch == "gru":  # per layer: input and hidden weights (3D x D each) and their biases (3D each)
        block, block_tables = 6 * d * d + 6 * d, 0
    else:
        # LayerNorm in, uvqk (D x 4D), LayerNorm on A V, out proj (D x D); relative bias tables per head
        block, block_tables = 5 * d * d + 9 * d, (NUM_POS_BUCKETS + NUM_TIME_BUCKETS) * a.n_heads
    head = head_tables = 0
    if a.event_type_loss_weight > 0:  # embeddings of type, age bucket, hour; MLP (D + (R + 1) e) -> D -> E
        e = action_embedding_dim(d)
        head_tables = (a.num_event_types + NUM_TIME_BUCKETS + 1 + 24) * e
        head = (d + (RECENT_EVENTS + 1) * e + 1) * d + (d + 1) * a.num_event_types
    if a.decay_loss_weight > 0:  # MLP (D + DECAY_FEATURES) -> D -> K on the hidden state and decay_features
        head += (d + DECAY_FEATURES + 1) * d + (d + 1) * NUM_DECAY_BUCKETS
    dense = 2 * d + a.n_layers * block + 2 * d + head  # embedding LayerNorm, blocks, final LayerNorm, heads
    embeddings += sum(content_params(a).values())  # the content tower builds item rows like a table
    if non_embedding:
        return dense
    return dense + embeddings + a.n_layers * block_tables + head_tables


def largest_tensor(a: ModelArgs) -> int:
    """Elements of the model's largest parameter tensor: the item table (num_items x dim; the output layer is tied
    to it), Mult-VAE's encoder/decoder matrix (items and categories x hidden)."""
    if a.arch == "vae":
        return (a.num_items + a.num_categories) * a.vae_hidden
    return a.num_items * a.dim


def content_params(a: ModelArgs) -> dict[str, int]:
    """The representation's parameters besides the ID table: "tables" (category, brand, price-bucket embeddings and
    the user side-feature rows), "text" (the TEXT_DIM -> D projection) and "graph" (the item-graph fusion's 2D -> D
    gate): the dense ones are applied once per catalog item per step, counted with the tables."""
    f, d = a.item_features, a.dim
    tables = (a.num_categories * ("category" in f) + (a.brand_buckets + 1) * ("brand" in f)
              + NUM_PRICE_BUCKETS * ("price" in f)) * d
    tables += (a.user_feature_buckets + 1) * d if a.user_feature_buckets else 0
    return {"tables": tables, "text": TEXT_DIM * d if "text" in f else 0,
            "graph": (2 * d + 1) * d if a.graph_hops else 0}


def flops_per_token(a: ModelArgs) -> int:
    """Training FLOPs per token (forward + backward), the estimate nanoGPT's estimate_mfu uses:

        6 * N                   N = non-embedding parameters: one multiply-add per weight forward (2 FLOPs),
                                twice that backward (grads w.r.t. inputs and weights)
      + 6 * D * C               output layer (tied item embedding): C = num_items for the full softmax,
                                num_negatives for the sampled one (in-batch candidates depend on the batch
                                and are left out)
      + 12 * n_layers * D * T   attention: Q K^T and A V are D * T multiply-adds each per token at context T
                                = max_len (2 * 2 forward, x3 with backward; causal masking not discounted)
    Embedding lookups (items, event types, positions, time, HSTU bias tables) cost no FLOPs. Left out: the content
    tower's text projection, 6 * num_items * TEXT_DIM * D per optimizer step (not per token) with the full softmax.
    vae (a bag of max_len items is one row): per item of the bag, its share of the row's dense layers and the
    decoder's V x H output layer (the encoder's V x H input layer is an embedding-bag lookup).
    """
    if a.arch == "vae":
        dense, out = count_params(a, non_embedding=True), (a.vae_hidden + 1) * (a.num_items + a.num_categories)
        return 6 * (dense + out) // a.max_len
    candidates = a.num_items if a.loss == "full" else a.num_negatives
    attention = 12 * a.n_layers * a.dim * a.max_len if a.arch != "gru" else 0  # a GRU has no attention
    return 6 * count_params(a, non_embedding=True) + 6 * a.dim * candidates + attention
