"""The sequential autoencoder of the 2025 paper (seed 004, Section 4.1; SANE, Schürholt et al. 2024).

Neuron tokens are cut to a fixed ``token_size`` (shorter ones padded, longer ones split into
consecutive tokens), mapped by one linear layer to ``d_model``, given learned position embeddings
(token number + layer + token number within the layer) and passed through ``blocks`` attention
blocks; a linear map gives one latent of size ``latent`` per token (no bottleneck token). The
decoder mirrors it. The embedding of a network is the mean of its token latents (the paper's
"center of gravity").

Long networks are handled in windows of ``window`` consecutive tokens: training sees one random
window per sample; encoding and decoding a whole network run its windows one after another (0:
the whole sequence at once, as the paper does for its 10,853-parameter CNN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..tokens import WeightStructure
from .models import Block, Dropout, init_weights, register_autoencoder
from .tokens import TokenPlan, chunked_tokens


@register_autoencoder("sequential")
class SequentialAutoencoder(nn.Module):
    """SANE-style: per-token latents ``[B, N, L]``, embedding = their mean."""

    @classmethod
    def token_plan(cls, structure: WeightStructure, model: dict[str, Any]) -> TokenPlan:
        return chunked_tokens(structure, model["token_size"])

    def __init__(self, model: dict[str, Any], plan: TokenPlan) -> None:
        super().__init__()
        n, t = plan.shape
        d, latent = model["d_model"], model["latent"]
        self.tokens = n
        self.window = model["window"] if 0 < model["window"] < n else n
        size = (d, model["heads"], model["ff_dim"], model["dropout"])
        self.register_buffer("layer", torch.from_numpy(plan.layer), persistent=False)
        self.register_buffer("within", torch.from_numpy(plan.within), persistent=False)
        self.pos_token = nn.Embedding(n, d)
        self.pos_layer = nn.Embedding(plan.layers, d)
        self.pos_within = nn.Embedding(int(plan.within.max()) + 1, d)
        self.tokenizer = nn.Linear(t, d)
        self.encoder = nn.ModuleList(Block(*size) for _ in range(model["blocks"]))
        self.norm_in = nn.LayerNorm(d)
        self.compress = nn.Linear(d, latent)
        self.expand = nn.Linear(latent, d)
        self.decoder = nn.ModuleList(Block(*size) for _ in range(model["blocks"]))
        self.norm_out = nn.LayerNorm(d)
        self.detokenizer = nn.Linear(d, t)
        self.drop = Dropout(model["dropout"])
        init_weights(self)

    def positions(self, ids: torch.Tensor) -> torch.Tensor:
        """Position embeddings of token numbers ``ids`` (any shape) -> ``[..., d_model]``."""
        return (
            self.pos_token(ids)
            + self.pos_layer(self.layer[ids])
            + self.pos_within(self.within[ids])
        )

    def windows(self) -> list[torch.Tensor]:
        """The consecutive windows a whole network is encoded in."""
        ids = torch.arange(self.tokens, device=self.layer.device)
        return list(ids.split(self.window))

    def encode(self, tokens: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token latents ``[B, W, L]`` of tokens ``[B, W, T]`` at token numbers ``ids`` ``[B, W]``
        (None: the whole network, window by window)."""
        if ids is None:
            parts = [
                self.encode(tokens[:, w], w.expand(tokens.shape[0], -1)) for w in self.windows()
            ]
            return torch.cat(parts, dim=1)
        x = self.drop(self.tokenizer(tokens) + self.positions(ids))
        for block in self.encoder:
            x = block(x)
        return self.compress(self.norm_in(x))

    def decode(self, z: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        if ids is None:
            parts = [self.decode(z[:, w], w.expand(z.shape[0], -1)) for w in self.windows()]
            return torch.cat(parts, dim=1)
        x = self.drop(self.expand(z) + self.positions(ids))
        for block in self.decoder:
            x = block(x)
        return self.detokenizer(self.norm_out(x))

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=1)
