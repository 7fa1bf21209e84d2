"""Where each weight sits in a network: layers, units, tokens, permutations, layer-wise statistics.

:class:`WeightStructure` reads an architecture plan (modelzoo.architectures: the layer table
resolved into shapes and parameter slots, ``zoo.plan``) and answers, for every position of the flat weight vector, which output unit (neuron / conv
channel) and which input unit of which layer it belongs to. Everything that needs the network's
structure is then a precomputed integer gather over flat vectors, vectorised over a batch:

* tokens: one per output unit of every conv/linear layer = [incoming weights flattened, bias],
  padded to the longest token, with a mask and (layer, unit) positions; ``detokenize`` inverts it.
* permutations: hidden units of layer l may be reordered if the input units of layer l+1 move with
  them (for Conv -> Flatten -> Linear the block of H*W features of a channel moves together; after
  global average pooling a channel is one feature); pooling and activations are channel-wise, so
  the network's function is unchanged. The last layer's outputs (the classes) never move.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .architectures import ArchitecturePlan, ParameterSlot
from .errors import ModelZooError


@dataclass(frozen=True)
class WeightedLayer:
    """One conv/linear layer as seen from the flat vector."""

    name: str  # module name, e.g. "conv1", "fc2"
    units: int  # output channels / features
    fan_in: int  # weights per unit (in_channels * k * k, or in_features)
    group: int  # consecutive weights per input unit (k * k; H * W after a conv + Flatten; else 1)
    weight_offset: int
    bias_offset: int | None

    @property
    def token_length(self) -> int:
        return self.fan_in + (self.bias_offset is not None)


class WeightStructure:
    """Layer structure of a layer-table architecture, checked against the zoo's layout."""

    def __init__(self, layers: list[WeightedLayer], parameters: int) -> None:
        self.layers = tuple(layers)
        self.parameters = parameters
        if sum(layer.units * layer.token_length for layer in layers) != parameters:
            raise ModelZooError("weight structure does not cover every parameter of the layout")
        self._build_token_index()
        self._build_unit_maps()

    @classmethod
    def of(cls, source: ArchitecturePlan | object) -> WeightStructure:
        """The structure of an architecture plan, or of anything that has one as ``.plan`` (a
        ``Zoo``: ``WeightStructure.of(zoo)``), cached per plan."""
        plan = source if isinstance(source, ArchitecturePlan) else getattr(source, "plan", None)
        if not isinstance(plan, ArchitecturePlan):
            raise ModelZooError(f"WeightStructure.of: expected a zoo or an architecture plan, "
                                f"got {type(source).__name__}")  # fmt: skip
        return _structure_of(plan)

    @classmethod
    def from_plan(cls, plan: ArchitecturePlan) -> WeightStructure:
        """The structure of an architecture plan (``zoo.plan``): its conv/linear layers, with
        how many consecutive weights of a unit's row belong to one input unit."""
        layers, group = [], 1
        for row in plan.layers:
            if row.kind == "flatten" and len(row.shape_in) == 3:
                group = row.shape_in[1] * row.shape_in[2]  # a channel becomes H*W features
            if not row.trained:
                continue
            if row.kind == "conv":
                group = row.layer.kernel_size**2
            weight = row.weight
            units = weight.shape[0]
            bias = row.bias.offset if row.bias is not None else None
            layers.append(WeightedLayer(row.module, units, weight.size // units, group,
                                        weight.offset, bias))  # fmt: skip
            group = 1
        return cls(layers, plan.parameters)

    # --------------------------------------------------------------------------- tokens
    def _build_token_index(self) -> None:
        length = max(layer.token_length for layer in self.layers)
        rows, positions = [], []
        for number, layer in enumerate(self.layers):
            index = np.full((layer.units, length), -1, dtype=np.int64)
            units = np.arange(layer.units)
            index[:, : layer.fan_in] = (
                layer.weight_offset + units[:, None] * layer.fan_in + np.arange(layer.fan_in)
            )
            if layer.bias_offset is not None:
                index[:, layer.fan_in] = layer.bias_offset + units
            rows.append(index)
            positions.append(np.stack([np.full(layer.units, number), units], axis=1))
        self.token_index = np.concatenate(rows)  # [tokens, length], -1 = padding
        self.token_mask = self.token_index >= 0
        self.token_positions = np.concatenate(positions).astype(np.int64)  # (layer, unit)
        self._gather = np.where(self.token_mask, self.token_index, 0)
        self._scatter = self.token_index[self.token_mask]

    @property
    def token_shape(self) -> tuple[int, int]:
        return self.token_index.shape  # type: ignore[return-value]

    def tokenize(self, flat: np.ndarray) -> np.ndarray:
        """``[..., P]`` -> ``[..., tokens, length]`` (padding is 0; see ``token_mask``)."""
        return np.where(self.token_mask, flat[..., self._gather], 0).astype(flat.dtype, copy=False)

    def detokenize(self, tokens: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`tokenize` (padding is ignored)."""
        out = np.empty((*tokens.shape[:-2], self.parameters), dtype=tokens.dtype)
        out[..., self._scatter] = tokens[..., self.token_mask]
        return out

    # --------------------------------------------------------------------------- permutations
    def _build_unit_maps(self) -> None:
        """Per flat position: its output unit / input unit (global ids) and their strides."""
        hidden = self.layers[:-1]
        self.unit_base = np.cumsum([0] + [layer.units for layer in hidden])
        self.hidden_units = int(self.unit_base[-1])
        dummy = self.hidden_units  # a unit that never moves
        p = self.parameters
        self._row_unit, self._col_unit = np.full(p, dummy), np.full(p, dummy)
        self._row_stride, self._col_stride = np.zeros(p, np.int64), np.zeros(p, np.int64)
        for number, layer in enumerate(self.layers):
            units = np.arange(layer.units)
            weights = slice(layer.weight_offset, layer.weight_offset + layer.units * layer.fan_in)
            if number < len(hidden):
                base = self.unit_base[number]
                self._row_unit[weights] = np.repeat(base + units, layer.fan_in)
                self._row_stride[weights] = layer.fan_in
                if layer.bias_offset is not None:
                    self._row_unit[layer.bias_offset : layer.bias_offset + layer.units] = (
                        base + units
                    )
                    self._row_stride[layer.bias_offset : layer.bias_offset + layer.units] = 1
            if number > 0:
                inputs = layer.fan_in // layer.group
                column = np.repeat(np.arange(inputs), layer.group)
                self._col_unit[weights] = np.tile(self.unit_base[number - 1] + column, layer.units)
                self._col_stride[weights] = layer.group

    def random_permutations(self, rng: np.random.Generator, count: int = 1) -> np.ndarray:
        """``[count, hidden_units + 1]`` global unit maps, each layer shuffled independently."""
        maps = np.tile(np.arange(self.hidden_units + 1), (count, 1))
        for number, layer in enumerate(self.layers[:-1]):
            base = self.unit_base[number]
            maps[:, base : base + layer.units] = base + np.argsort(
                rng.random((count, layer.units)), axis=1
            )
        return maps

    def permutation_index(self, maps: np.ndarray) -> np.ndarray:
        """``[count, P]`` source positions: ``flat[..., index]`` is the permuted network."""
        maps = np.atleast_2d(maps)
        row = (maps[:, self._row_unit] - self._row_unit) * self._row_stride
        col = (maps[:, self._col_unit] - self._col_unit) * self._col_stride
        return np.arange(self.parameters) + row + col

    def permute(self, flat: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """Apply one unit map per row of ``flat`` ``[B, P]`` (or one map to a ``[P]`` vector)."""
        index = self.permutation_index(maps)
        if flat.ndim == 1:
            return flat[index[0]]
        return np.take_along_axis(flat, index, axis=-1)

    # --------------------------------------------------------------------------- layer groups


@functools.lru_cache(maxsize=16)
def _structure_of(plan: ArchitecturePlan) -> WeightStructure:
    return WeightStructure.from_plan(plan)


def layer_groups(layout: tuple[ParameterSlot, ...]) -> list[tuple[str, list[ParameterSlot]]]:
    """Parameter tensors grouped by module ("conv1": weight and bias), in layout order.

    This is the "layer" of the layer-wise normalisation (the 2022 paper's LWLN normalises per
    layer, weights and bias together); it works for every architecture, layer table or not.
    """
    groups: dict[str, list[ParameterSlot]] = {}
    for slot in layout:
        groups.setdefault(slot.name.rsplit(".", 1)[0], []).append(slot)
    return list(groups.items())


class LayerNormalizer:
    """Per-layer ``(w - mean) / std`` on flat vectors ``[..., P]`` (numpy or torch), and back."""

    def __init__(
        self, layout: tuple[ParameterSlot, ...], stats: dict[str, tuple[float, float]]
    ) -> None:
        size = sum(s.size for s in layout)
        self.stats = dict(stats)
        self.mean, self.std = np.zeros(size, np.float32), np.ones(size, np.float32)
        for name, slots in layer_groups(layout):
            if name not in stats:
                raise ModelZooError(f"normalisation statistics lack layer {name!r}")
            mean, std = stats[name]
            for slot in slots:
                self.mean[slot.offset : slot.offset + slot.size] = mean
                self.std[slot.offset : slot.offset + slot.size] = std if std > 0 else 1.0

    def _like(self, values, array: np.ndarray):
        if isinstance(values, np.ndarray):
            return array
        import torch

        return torch.as_tensor(array, device=values.device, dtype=values.dtype)

    def apply(self, flat):
        return (flat - self._like(flat, self.mean)) / self._like(flat, self.std)

    def invert(self, flat):
        return flat * self._like(flat, self.std) + self._like(flat, self.mean)
