"""The content tower: an item's representation from its id and its content, at the input and in the output layer.

    item(v) = seen(v) * ID(v) + Category(cat(v)) + Brand(brand(v)) + Price(bucket(v)) + W text(v)

ID(v) is used only for items with training events (seen): the ID row of an item that never trained would be pushed
down by the softmax as a negative and rank a new item below everything, so an unseen item is its content alone
(zero-shot). text(v) is the item's frozen all-MiniLM-L6-v2 sentence embedding (384 floats, computed once per catalog
snapshot by ray_train/text_embed.py), projected by a learned W (384 -> D). The per-item feature arrays are buffers
(set_item_arrays), saved with the weights, so a loaded model scores new items without the data directory.
Training only: id_dropout drops the ID part of that share of item occurrences, so content alone learns to rank.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from interest_core.contract import PAD_ID
from interest_core.item_features import NUM_PRICE_BUCKETS, TEXT_DIM, ItemArrays
from interest_core.modelargs import ModelArgs


class ItemTower(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        v, d, f = args.num_items, args.dim, args.item_features
        self.id_dropout = args.id_dropout
        self.id = nn.Embedding(v, d, padding_idx=PAD_ID)
        self.category = nn.Embedding(args.num_categories, d, padding_idx=0) if "category" in f else None
        self.brand = nn.Embedding(args.brand_buckets + 1, d, padding_idx=0) if "brand" in f else None
        self.price = nn.Embedding(NUM_PRICE_BUCKETS, d, padding_idx=0) if "price" in f else None
        self.text = nn.Linear(TEXT_DIM, d, bias=False) if "text" in f else None
        self.register_buffer("seen", torch.ones(v))  # until set_item_arrays: every item uses its ID row
        self.register_buffer("item_category", torch.zeros(v, dtype=torch.long))
        self.register_buffer("item_brand", torch.zeros(v, dtype=torch.long))
        self.register_buffer("item_price", torch.zeros(v, dtype=torch.long))
        self.register_buffer("item_text", torch.zeros(v, TEXT_DIM) if self.text is not None else torch.zeros(0))

    @property
    def num_embeddings(self) -> int:
        return self.id.num_embeddings

    def set_item_arrays(self, arrays: ItemArrays) -> None:
        """The data's per-item features (interest_core.item_features.item_arrays), by item id."""
        v = self.num_embeddings
        if len(arrays.seen) != v:
            raise ValueError(f"item arrays for {len(arrays.seen)} items do not fit a model of {v} items")
        if self.text is not None and (arrays.text is None or arrays.text.shape != (v, TEXT_DIM)):
            raise ValueError(f"the model reads item text: give a ({v}, {TEXT_DIM}) text embedding matrix")
        with torch.no_grad():
            self.seen.copy_(torch.from_numpy(np.asarray(arrays.seen, dtype=np.float32)))
            self.seen[PAD_ID] = 0.0
            for buf, values, table in ((self.item_category, arrays.category, self.category),
                                       (self.item_brand, arrays.brand, self.brand),
                                       (self.item_price, arrays.price, self.price)):
                values = torch.as_tensor(np.asarray(values), dtype=torch.long)
                if table is not None and int(values.max()) >= table.num_embeddings:
                    raise ValueError(f"item feature id {int(values.max())} >= its table's {table.num_embeddings} rows")
                buf.copy_(values)
            if self.text is not None:
                self.item_text.copy_(torch.from_numpy(np.asarray(arrays.text, dtype=np.float32)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) item ids -> (..., D) representations (zeros at padding)."""
        keep = self.seen[ids]  # (...)
        if self.training and self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        x = self.id(ids) * keep.unsqueeze(-1)  # (..., D)
        for table, buf in ((self.category, self.item_category), (self.brand, self.item_brand),
                           (self.price, self.item_price)):
            if table is not None:
                x = x + table(buf[ids])
        if self.text is not None:
            x = x + self.text(self.item_text[ids])
        return x * (ids != PAD_ID).unsqueeze(-1)

    @property
    def weight(self) -> torch.Tensor:
        """(V, D): every item's representation (the output layer); ID dropout applies in training as at the input."""
        return self(torch.arange(self.num_embeddings, device=self.seen.device))
