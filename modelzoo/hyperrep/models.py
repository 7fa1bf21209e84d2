"""Autoencoders of weights: a registry, the 2021 attention and feed-forward models, shared parts.

Every autoencoder maps tokens ``[B, N, T]`` (a :class:`~modelzoo.hyperrep.tokens.TokenPlan` of the
zoo's structure) to a latent and back:

* ``encode(tokens) -> z``: ``[B, L]``, or ``[B, N, L]`` for the sequential model (one latent per
  token);
* ``decode(z) -> tokens`` ``[B, N, T]`` (values at padded slots are ignored by every loss);
* ``embed(z) -> [B, L]``: the representation probes and samplers use (``z`` itself, or the mean of
  the token latents).

``@register_autoencoder("name")`` adds a class; ``autoencoders.build_autoencoder`` creates one from
the config's ``model`` section (and imports every built-in model first); an unknown name lists
the registered ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..tokens import WeightStructure
from .tokens import TokenPlan, flat_tokens, neuron_tokens, weight_tokens

_AUTOENCODERS: dict[str, type[nn.Module]] = {}


def register_autoencoder(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register_autoencoder("attention")``."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _AUTOENCODERS:
            raise ValueError(f"autoencoder {name!r} registered twice")
        _AUTOENCODERS[name] = cls
        return cls

    return decorator


def init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation (normal 0.02, zero biases), for every model here."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, 0.0, 0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, 0.0, 0.02)


# --------------------------------------------------------------------------- shared parts


class Dropout(nn.Module):
    """Inverted dropout with masks from 16-bit random integers: the same distribution as
    ``nn.Dropout`` (rate rounded to a multiple of 1/65536, output scaled by the exact keep
    probability), ~3x faster on CPU, where torch's Bernoulli sampler is a sixth of a training
    step of the tetris autoencoder. Draws from torch's global generator, like ``nn.Dropout``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.cut = round(p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        words = torch.empty(x.numel() // 4 + 1, dtype=torch.int64, device=x.device).random_()
        bits = words.view(torch.int16)[: x.numel()].view(x.shape)
        keep = 1.0 - self.cut / 65536
        return torch.where(bits >= self.cut - 32768, x * (1.0 / keep), 0.0)


class Block(nn.Module):
    """Pre-norm transformer block (Vaswani et al. 2017): multi-head self-attention, then a
    ReLU feed-forward part, each with dropout and a residual connection.

    ``first_only`` computes the output of the first token only (keys and values still come from
    every token): the encoder's last block needs nothing else when only the compression token is
    read, which saves most of that block's work.
    """

    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv, self.out = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Linear(ff_dim, d_model))
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, first_only: bool = False) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if first_only:
            q, x = q[:, :, :1], x[:, :1]
        p = self.p if self.training else 0.0
        attended = functional.scaled_dot_product_attention(q, k, v, dropout_p=p)
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(b, x.shape[1], d)))
        return x + self.drop(self.ff(self.norm2(x)))


class TokenLinear(nn.Module):
    """A separate linear map per layer applied to that layer's tokens (tokens ``[B, N, a]`` ->
    ``[B, N, b]``): the 2021 code's per-layer neuron embedding, and the per-layer output head."""

    def __init__(self, layer: np.ndarray, a: int, b: int) -> None:
        super().__init__()
        layers = int(layer.max()) + 1
        self.register_buffer("layer", torch.from_numpy(layer), persistent=False)
        self.weight = nn.Parameter(torch.randn(layers, a, b) * 0.02)
        self.bias = nn.Parameter(torch.zeros(layers, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight[self.layer], self.bias[self.layer]  # [N, a, b], [N, b]
        return torch.bmm(x.transpose(0, 1), weight).transpose(0, 1) + bias


class ProjectionHead(nn.Module):
    """The contrastive projection head p(z) (SimCLR): linear layers with LayerNorm + ReLU."""

    def __init__(self, latent: int, layers: int, hidden: int, out: int) -> None:
        super().__init__()
        parts: list[nn.Module] = []
        width = latent
        for _ in range(layers - 1):
            parts += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()]
            width = hidden
        parts.append(nn.Linear(width, out))
        self.net = nn.Sequential(*parts)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


# --------------------------------------------------------------------------- 2021 attention


@register_autoencoder("attention")
class AttentionAutoencoder(nn.Module):
    """The 2021 paper's attention autoencoder (Section 3, Figures 2-3; seed 001).

    Tokens (one per neuron: AttN, or per weight: AttW) are embedded by a per-layer linear map,
    learned position embeddings are added, and ``blocks`` attention blocks follow. With
    ``compression: token`` (+t) a learned compression token is prepended and only its output is
    linearly compressed; otherwise the whole output sequence is. ``tanh`` bounds z. The decoder
    is symmetric: a linear map from z to the token sequence, position embeddings, attention
    blocks, a per-layer linear head back to token values.
    """

    @classmethod
    def token_plan(cls, structure: WeightStructure, model: dict[str, Any]) -> TokenPlan:
        return (
            neuron_tokens(structure) if model["encoding"] == "neuron" else weight_tokens(structure)
        )

    def __init__(self, model: dict[str, Any], plan: TokenPlan) -> None:
        super().__init__()
        n, t = plan.shape
        d, latent = model["d_model"], model["latent"]
        self.tokens, self.d_model = n, d
        self.use_token = model["compression"] == "token"
        size = (model["d_model"], model["heads"], model["ff_dim"], model["dropout"])
        self.embed_in = TokenLinear(plan.layer, t, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_in = nn.Parameter(torch.randn(n + self.use_token, d) * 0.02)
        self.encoder = nn.ModuleList(Block(*size) for _ in range(model["blocks"]))
        self.norm_in = nn.LayerNorm(d)
        self.compress = nn.Linear(d if self.use_token else n * d, latent)
        self.expand = nn.Linear(latent, n * d)
        self.pos_out = nn.Parameter(torch.randn(n, d) * 0.02)
        self.decoder = nn.ModuleList(Block(*size) for _ in range(model["blocks"]))
        self.norm_out = nn.LayerNorm(d)
        self.head = TokenLinear(plan.layer, d, t)
        self.drop = Dropout(model["dropout"])
        init_weights(self)

    def encode(self, tokens: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed_in(tokens)
        if self.use_token:
            x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1)
        x = self.drop(x + self.pos_in)
        for number, block in enumerate(self.encoder):
            x = block(x, first_only=self.use_token and number == len(self.encoder) - 1)
        x = self.norm_in(x)
        return torch.tanh(self.compress(x[:, 0] if self.use_token else x.flatten(1)))

    def decode(self, z: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.drop(self.expand(z).view(-1, self.tokens, self.d_model) + self.pos_out)
        for block in self.decoder:
            x = block(x)
        return self.head(self.norm_out(x))

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return z


# --------------------------------------------------------------------------- 2021 feed-forward


@register_autoencoder("feedforward")
class FeedForwardAutoencoder(nn.Module):
    """The 2021 paper's FF baseline (Section 4.2): ``ff_layers`` FC-ReLU layers per side whose
    widths shrink linearly from the number of weights to the latent size (tanh on z), mirrored
    by the decoder (its last layer linear)."""

    @classmethod
    def token_plan(cls, structure: WeightStructure, model: dict[str, Any]) -> TokenPlan:
        return flat_tokens(structure)

    def __init__(self, model: dict[str, Any], plan: TokenPlan) -> None:
        super().__init__()
        self.width = plan.shape[1]
        steps = model["ff_layers"]
        widths = [
            round(self.width + (model["latent"] - self.width) * i / steps) for i in range(steps + 1)
        ]
        self.encoder = self._stack(widths, model["dropout"])
        self.decoder = self._stack(widths[::-1], model["dropout"])
        init_weights(self)

    @staticmethod
    def _stack(widths: list[int], dropout: float) -> nn.Sequential:
        parts: list[nn.Module] = []
        for number, (a, b) in enumerate(itertools.pairwise(widths)):
            parts.append(nn.Linear(a, b))
            if number < len(widths) - 2:
                parts += [nn.ReLU(), Dropout(dropout)]
        return nn.Sequential(*parts)

    def encode(self, tokens: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.encoder(tokens.flatten(1)))

    def decode(self, z: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, self.width)

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return z
