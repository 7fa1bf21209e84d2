"""The zoo architectures, declared once as layer tables and interpreted by both training engines.

An architecture is a tuple of small layer records (``Conv``, ``MaxPool``, ``Act``, ``Drop``,
``Flatten``, ``Linear``). :func:`build_model` turns it into a plain ``torch.nn.Sequential`` (the
reference trainer, ``Zoo.model``); the vectorised engine reads the same table to run hundreds of
stacked copies. Parameter names, shapes and the flattening order therefore agree everywhere.

Exact counts from the papers (tested): tetris MLP 100; CNN-small 2,464 (1x28x28) and 2,864
(3x28x28); CNN-medium 10,853 (3x32x32). ``cnn_tiny`` is our own digits CNN (1,042 on 1x8x8).
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from .errors import SpecError
from .seeding import hashed_uniform


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel_size: int
    bias: bool = True


@dataclass(frozen=True)
class Linear:
    out_features: int | None  # None: the number of classes
    bias: bool = True


@dataclass(frozen=True)
class MaxPool:
    kernel_size: int = 2


@dataclass(frozen=True)
class Act:
    """The run's activation function."""


@dataclass(frozen=True)
class Drop:
    """Dropout at the run's dropout rate (identity when the rate is 0)."""


@dataclass(frozen=True)
class Flatten:
    pass


Layer = Conv | Linear | MaxPool | Act | Drop | Flatten


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    layers: tuple[Layer, ...]


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "gelu": functional.gelu,
    "leaky_relu": functional.leaky_relu,
    "silu": functional.silu,
}

_ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, description: str, layers: tuple[Layer, ...]) -> Architecture:
    """Add an architecture (a layer table) to the registry."""
    if name in _ARCHITECTURES:
        raise ValueError(f"architecture {name!r} registered twice")
    _ARCHITECTURES[name] = Architecture(name, description, layers)
    return _ARCHITECTURES[name]


register(
    "tetris_mlp",
    "2021 paper, Table 10: 16-5-4 feed-forward net without biases (100 parameters on 4x4 tetris)",
    (Flatten(), Linear(5, bias=False), Act(), Drop(), Linear(None, bias=False)),
)
register(
    "cnn_small",
    "2021 paper Table 11 / Model Zoos 'small CNN': conv 8-6-4 (k 5,5,2), two max-pools, fc 20; "
    "2,464 parameters on 1x28x28, 2,864 on 3x28x28",
    (
        Conv(8, 5), MaxPool(2), Act(), Drop(),
        Conv(6, 5), MaxPool(2), Act(), Drop(),
        Conv(4, 2), Act(), Drop(),
        Flatten(), Linear(20), Act(), Drop(), Linear(None),
    ),
)  # fmt: skip
register(
    "cnn_medium",
    "2025 paper, Table 3: conv 16-32-15 (k 3), three max-pools, fc 20; 10,853 parameters on 3x32x32",
    (
        Conv(16, 3), MaxPool(2), Act(), Drop(),
        Conv(32, 3), MaxPool(2), Act(), Drop(),
        Conv(15, 3), MaxPool(2), Act(), Drop(),
        Flatten(), Linear(20), Act(), Drop(), Linear(None),
    ),
)  # fmt: skip
register(
    "cnn_tiny",
    "modelzoo's digits CNN: conv 8-8 (k 3,2), one max-pool, fc 16; 1,042 parameters on 1x8x8",
    (
        Conv(8, 3), MaxPool(2), Act(), Drop(),
        Conv(8, 2), Act(), Drop(),
        Flatten(), Linear(16), Act(), Drop(), Linear(None),
    ),
)  # fmt: skip


def list_architectures(pattern: str = "*") -> list[str]:
    return sorted(name for name in _ARCHITECTURES if fnmatch.fnmatch(name, pattern))


def get_architecture(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise SpecError(
            f"unknown architecture {name!r}; choose one of: {', '.join(list_architectures())}"
        ) from None


class SeededDropout(nn.Module):
    """Dropout whose masks are a pure function of (run seed, step, layer): see modelzoo.seeding.

    The trainer sets ``key`` (an int64 tensor of shape [1]) and ``step`` before each forward pass.
    Without a key (a user fine-tuning a zoo model) it behaves like ``nn.Dropout``.
    """

    def __init__(self, p: float, index: int) -> None:
        super().__init__()
        self.p = float(p)
        self.index = index
        self.key: torch.Tensor | None = None
        self.step = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.key is None:
            return functional.dropout(x, self.p, training=True)
        uniform = hashed_uniform(self.key.to(x.device), self.step, self.index, tuple(x.shape))[0]
        return x * (uniform >= self.p).to(x.dtype) / (1.0 - self.p)


class Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise SpecError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")


def trace_shapes(
    layers: tuple[Layer, ...], input_shape: tuple[int, int, int], num_classes: int
) -> list[tuple[Layer, tuple[int, ...], tuple[int, ...]]]:
    """(layer, input shape, output shape) for every layer, without batch dimension."""
    shape: tuple[int, ...] = tuple(input_shape)
    out = []
    for layer in layers:
        if isinstance(layer, Conv):
            if len(shape) != 3:
                raise SpecError("a Conv layer needs an image input (C, H, W)")
            c, h, w = shape
            k = layer.kernel_size
            if h < k or w < k:
                raise SpecError(f"input {h}x{w} is smaller than a {k}x{k} convolution kernel")
            new: tuple[int, ...] = (layer.out_channels, h - k + 1, w - k + 1)
        elif isinstance(layer, MaxPool):
            c, h, w = shape
            new = (c, h // layer.kernel_size, w // layer.kernel_size)
        elif isinstance(layer, Flatten):
            size = 1
            for s in shape:
                size *= s
            new = (size,)
        elif isinstance(layer, Linear):
            new = (layer.out_features or num_classes,)
        else:
            new = shape
        out.append((layer, shape, new))
        shape = new
    return out


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    activation: str = "tanh",
    dropout: float = 0.0,
) -> nn.Module:
    """A plain ``nn.Module`` of the architecture; parameters keep torch's default init."""
    arch = get_architecture(name)
    check_activation(activation)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    counts = {"conv": 0, "fc": 0, "pool": 0, "act": 0, "drop": 0}
    for layer, shape_in, _shape_out in trace_shapes(arch.layers, input_shape, num_classes):
        if isinstance(layer, Conv):
            counts["conv"] += 1
            modules[f"conv{counts['conv']}"] = nn.Conv2d(
                shape_in[0], layer.out_channels, layer.kernel_size, bias=layer.bias
            )
        elif isinstance(layer, Linear):
            counts["fc"] += 1
            modules[f"fc{counts['fc']}"] = nn.Linear(
                shape_in[0], layer.out_features or num_classes, bias=layer.bias
            )
        elif isinstance(layer, MaxPool):
            counts["pool"] += 1
            modules[f"pool{counts['pool']}"] = nn.MaxPool2d(layer.kernel_size)
        elif isinstance(layer, Act):
            counts["act"] += 1
            modules[f"act{counts['act']}"] = Activation(activation)
        elif isinstance(layer, Drop):
            if dropout > 0:
                modules[f"drop{counts['drop'] + 1}"] = SeededDropout(dropout, counts["drop"])
            counts["drop"] += 1
        elif isinstance(layer, Flatten):
            modules["flatten"] = nn.Flatten()
    return nn.Sequential(modules)


@dataclass(frozen=True)
class ParameterSlot:
    """Where one tensor lives in a model's flat weight vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        size = 1
        for s in self.shape:
            size *= s
        return size

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "offset": self.offset}


def parameter_layout(model: nn.Module) -> list[ParameterSlot]:
    """The flattening convention: state_dict order of trainable parameters, each in C order."""
    slots, offset = [], 0
    for name, param in model.named_parameters():
        slot = ParameterSlot(name, tuple(param.shape), offset)
        slots.append(slot)
        offset += slot.size
    return slots


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def load_flat_parameters(model: nn.Module, flat: torch.Tensor) -> nn.Module:
    """Copy a flat weight vector (layout order) into the model's parameters."""
    offset = 0
    with torch.no_grad():
        for param in model.parameters():
            n = param.numel()
            param.copy_(flat[offset : offset + n].reshape(param.shape))
            offset += n
    if offset != flat.numel():
        raise ValueError(f"weight vector has {flat.numel()} values, the model {offset}")
    return model
