"""How an autoencoder cuts a flat weight vector into a token sequence, and back.

Every autoencoder reads tokens ``[B, N, T]`` with a fixed mask ``[N, T]`` (real values vs padding)
and writes tokens of the same shape, so augmentation, losses and (de)tokenisation are shared. A
:class:`TokenPlan` is an index ``[N, T]`` into the flat vector (-1 = padding) plus, per token, its
layer and its position within the layer. The plans, all read off the zoo's
:class:`~modelzoo.tokens.WeightStructure` (so they follow its layer table):

* ``neuron``: one token per neuron / conv channel (incoming weights, then bias) -- the 2021
  paper's AttN encoding and the structure's own tokens;
* ``weight``: one token per weight (AttW);
* ``chunks``: neuron tokens cut into pieces of at most ``size`` values (SANE / the 2025 paper:
  tokens of 289 values; a longer neuron becomes several consecutive tokens);
* ``flat``: the whole vector as one token (the feed-forward autoencoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..tokens import WeightStructure


@dataclass(frozen=True, eq=False)
class TokenPlan:
    index: np.ndarray  # int64 [N, T], flat position of each slot, -1 = padding
    layer: np.ndarray  # int64 [N], layer number (WeightStructure.layers order)
    within: np.ndarray  # int64 [N], token number within its layer
    parameters: int

    @property
    def mask(self) -> np.ndarray:
        return self.index >= 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.index.shape  # type: ignore[return-value]

    @property
    def layers(self) -> int:
        return int(self.layer.max()) + 1

    def gather_index(self) -> torch.Tensor:
        """Flat index ``[N*T]`` into a vector padded with one trailing zero (padding -> P)."""
        return torch.from_numpy(np.where(self.mask, self.index, self.parameters).reshape(-1))

    def tokenize(self, flat: torch.Tensor) -> torch.Tensor:
        """``[B, P]`` -> ``[B, N, T]`` (padding 0)."""
        padded = torch.nn.functional.pad(flat, (0, 1))
        return padded[:, self.gather_index().to(flat.device)].view(-1, *self.shape)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, T]`` -> ``[B, P]``: the exact inverse of :meth:`tokenize` (padding dropped)."""
        mask = torch.from_numpy(self.mask).to(tokens.device)
        target = torch.from_numpy(self.index[self.mask]).to(tokens.device)
        out = tokens.new_empty((tokens.shape[0], self.parameters))
        out[:, target] = tokens[:, mask]
        return out


def _within(layer: np.ndarray) -> np.ndarray:
    starts = np.searchsorted(layer, layer, side="left")
    return np.arange(layer.size) - starts


def neuron_tokens(structure: WeightStructure) -> TokenPlan:
    layer = structure.token_positions[:, 0].astype(np.int64)
    return TokenPlan(structure.token_index.copy(), layer, _within(layer), structure.parameters)


def weight_tokens(structure: WeightStructure) -> TokenPlan:
    rows = structure.token_index
    index = rows[rows >= 0].reshape(-1, 1)
    layer = np.repeat(structure.token_positions[:, 0], (rows >= 0).sum(axis=1)).astype(np.int64)
    return TokenPlan(index, layer, _within(layer), structure.parameters)


def chunked_tokens(structure: WeightStructure, size: int) -> TokenPlan:
    pieces, layers = [], []
    for row, (layer, _) in zip(structure.token_index, structure.token_positions):
        real = row[row >= 0]
        for start in range(0, real.size, size):
            piece = np.full(size, -1, dtype=np.int64)
            chunk = real[start : start + size]
            piece[: chunk.size] = chunk
            pieces.append(piece)
            layers.append(layer)
    layer = np.asarray(layers, dtype=np.int64)
    return TokenPlan(np.stack(pieces), layer, _within(layer), structure.parameters)


def flat_tokens(structure: WeightStructure) -> TokenPlan:
    rows = structure.token_index
    index = rows[rows >= 0].reshape(1, -1)
    zero = np.zeros(1, dtype=np.int64)
    return TokenPlan(index, zero, zero, structure.parameters)


def layer_of_position(structure: WeightStructure) -> np.ndarray:
    """int64 ``[P]``: the layer number of every flat position."""
    out = np.empty(structure.parameters, dtype=np.int64)
    for row, (layer, _) in zip(structure.token_index, structure.token_positions):
        out[row[row >= 0]] = layer
    return out
