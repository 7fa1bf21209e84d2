"""The zoo architectures as layer tables, and the one place that resolves a table into a plan.

An architecture is a tuple of small layer records (``Conv``, ``MaxPool``, ``GlobalAvgPool``,
``Act``, ``Drop``, ``Flatten``, ``Linear``). :func:`plan_architecture` walks a table once for a given input shape and
class count and answers everything the rest of modelzoo asks about it: each layer's kind, module
name, input and output shape, and where its weight and bias sit in the flat weight vector (the
store's *layout*). ``nets.build_model`` builds modules from the plan, the vectorised engine's
stacked network runs it, the weight structure (tokens, permutations) reads its slots, and group
sizing counts its parameters and activations, so names, shapes and offsets cannot disagree.

This module imports no torch: specs, plans and zoo readers use it without paying for torch.

Exact counts from the papers (tested): tetris MLP 100; CNN-small 2,464 (1x28x28) and 2,864
(3x28x28); CNN-medium 10,853 (3x32x32); the Unterthiner et al. (2020) small-CNN zoo 4,970 (1x28x28
and its grey 1x32x32). ``cnn_tiny`` is our own digits CNN (1,042 on 1x8x8).
"""

from __future__ import annotations

import fnmatch
import functools
import math
from dataclasses import dataclass

from .errors import SpecError

ACTIVATION_NAMES = ("tanh", "relu", "sigmoid", "gelu", "leaky_relu", "silu")


@dataclass(frozen=True)
class Conv:
    """A square convolution without padding ("valid"): out = (in - kernel) // stride + 1."""

    out_channels: int
    kernel_size: int
    bias: bool = True
    stride: int = 1


@dataclass(frozen=True)
class Linear:
    out_features: int | None  # None: the number of classes
    bias: bool = True


@dataclass(frozen=True)
class MaxPool:
    kernel_size: int = 2


@dataclass(frozen=True)
class GlobalAvgPool:
    """The mean of each channel over H x W: an image (C, H, W) becomes C features, so it takes the
    place of ``Flatten`` before a ``Linear`` (Keras' GlobalAveragePooling2D)."""


@dataclass(frozen=True)
class Act:
    """The run's activation function."""


@dataclass(frozen=True)
class Drop:
    """Dropout at the run's dropout rate (identity when the rate is 0)."""


@dataclass(frozen=True)
class Flatten:
    pass


Layer = Conv | Linear | MaxPool | GlobalAvgPool | Act | Drop | Flatten
KINDS = {Conv: "conv", Linear: "fc", MaxPool: "pool", GlobalAvgPool: "gap", Act: "act", Drop: "drop",
         Flatten: "flatten"}  # fmt: skip
SINGLE = ("flatten", "gap")  # kinds that end the image part: one per table, named without a number


@dataclass(frozen=True)
class Architecture:
    """A layer table (``layers``), or a torch module built by ``builder`` ("module:function",
    imported only when needed) for networks that are not a plain stack: those are trained by the
    reference engine, their layout is read off the module (parameters and buffers)."""

    name: str
    description: str
    layers: tuple[Layer, ...] = ()
    builder: str | None = None
    activations: tuple[str, ...] = ACTIVATION_NAMES  # the activations it can be built with
    dropout: bool = True  # whether training.dropout applies

    @property
    def has_conv(self) -> bool:
        return self.builder is not None or any(isinstance(layer, Conv) for layer in self.layers)

    @property
    def is_layer_table(self) -> bool:
        return self.builder is None

    def check_settings(self, activation: str, dropout: float) -> None:
        """Refuse training settings the architecture does not have (e.g. ResNet-18 is ReLU)."""
        check_activation(activation)
        if activation not in self.activations:
            raise SpecError(f"architecture {self.name!r}: activation {activation!r} is not "
                            f"available; choose one of: {', '.join(self.activations)}")  # fmt: skip
        if dropout and not self.dropout:
            raise SpecError(f"architecture {self.name!r} has no dropout layers; set "
                            "training.dropout: 0")  # fmt: skip


_ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, description: str, layers: tuple[Layer, ...] = (), **kwargs) -> Architecture:
    """Add an architecture (a layer table, or ``builder=`` a module factory) to the registry."""
    if name in _ARCHITECTURES:
        raise ValueError(f"architecture {name!r} registered twice")
    if bool(layers) == bool(kwargs.get("builder")):
        raise ValueError(f"architecture {name!r}: give a layer table or a builder, not both")
    _ARCHITECTURES[name] = Architecture(name, description, layers, **kwargs)
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
register(
    "cnn_unterthiner",
    "Unterthiner et al. 2020 small-CNN zoo (dnn_predict_accuracy): three 3x3 convolutions of 16 "
    "filters with stride 2 and no padding, global average pooling, dense to the classes; 4,970 "
    "parameters on 1x28x28 and 1x32x32 (the zoo's grey CIFAR-10/SVHN), 5,258 on 3 channels",
    (
        Conv(16, 3, stride=2), Act(), Drop(),
        Conv(16, 3, stride=2), Act(), Drop(),
        Conv(16, 3, stride=2), Act(), Drop(),
        GlobalAvgPool(), Linear(None),
    ),
)  # fmt: skip


register(
    "resnet18",
    "Model Zoos ResNet-18: torchvision's BasicBlock [2, 2, 2, 2] with a 3x3 stride-1 stem and no "
    "max-pool; 11,173,962 parameters + 9,620 BatchNorm buffer values for 10 classes on 3x32x32 "
    "(reference engine)",
    builder="modelzoo.resnet:build_resnet18",
    activations=("relu",),
    dropout=False,
)


def list_architectures(pattern: str = "*") -> list[str]:
    return sorted(name for name in _ARCHITECTURES if fnmatch.fnmatch(name, pattern))


def get_architecture(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise SpecError(
            f"unknown architecture {name!r}; choose one of: {', '.join(list_architectures())}"
        ) from None


def check_activation(name: str) -> None:
    if name not in ACTIVATION_NAMES:
        raise SpecError(
            f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATION_NAMES)}"
        )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ParameterSlot:
    """Where one tensor lives in a model's flat weight vector. ``buffer``: a module buffer, not a
    trained parameter (BatchNorm running statistics, stored as float32 beside the parameters)."""

    name: str
    shape: tuple[int, ...]
    offset: int
    buffer: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def span(self) -> slice:
        return slice(self.offset, self.offset + self.size)

    def as_dict(self) -> dict:
        entry = {"name": self.name, "shape": list(self.shape), "offset": self.offset}
        return {**entry, "buffer": True} if self.buffer else entry


@dataclass(frozen=True)
class PlannedLayer:
    """One row of the layer table, resolved for an input shape.

    ``module`` is the layer's name in ``nets.build_model``'s ``nn.Sequential`` (``conv1``,
    ``pool1``, ``act2``, ``drop1``, ``fc2``, ``flatten``, ``gap``) and the prefix of its parameters
    in the layout; ``drop_index`` numbers the table's ``Drop`` layers (part of each dropout mask's
    seed).
    """

    layer: Layer
    kind: str
    module: str
    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    weight: ParameterSlot | None = None
    bias: ParameterSlot | None = None
    drop_index: int = -1

    @property
    def trained(self) -> bool:
        return self.weight is not None


@dataclass(frozen=True)
class ArchitecturePlan:
    """An architecture resolved for one input shape and class count (see module docstring)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    layers: tuple[PlannedLayer, ...]
    module_layout: tuple[ParameterSlot, ...] = ()  # architectures built by a module builder

    @functools.cached_property
    def layout(self) -> tuple[ParameterSlot, ...]:
        """The flattening convention: layer order, weight before bias, each tensor in C order
        (for a module architecture: its ``state_dict`` order, buffers marked)."""
        if self.module_layout:
            return self.module_layout
        return tuple(s for p in self.layers for s in (p.weight, p.bias) if s is not None)

    @property
    def is_layer_table(self) -> bool:
        return not self.module_layout

    @property
    def trained_slots(self) -> tuple[ParameterSlot, ...]:
        """The layout without buffers: what an optimiser changes."""
        return tuple(slot for slot in self.layout if not slot.buffer)

    @property
    def parameters(self) -> int:
        """Values in the flat vector (buffers included)."""
        return sum(slot.size for slot in self.layout)

    @property
    def trained_layers(self) -> tuple[PlannedLayer, ...]:
        return tuple(p for p in self.layers if p.trained)

    @property
    def has_conv(self) -> bool:
        return bool(self.module_layout) or any(p.kind == "conv" for p in self.layers)

    @property
    def activation_values(self) -> int:
        """Values of one example's activations, input included (memory estimates)."""
        return math.prod(self.input_shape) + sum(math.prod(p.shape_out) for p in self.layers)

    def check_layout(self, layout: list[dict] | tuple[ParameterSlot, ...]) -> str | None:
        """Why a stored layout is not this plan's (None when it is)."""
        given = [s.as_dict() if isinstance(s, ParameterSlot) else s for s in layout]
        expected = [s.as_dict() for s in self.layout]
        if given == expected:
            return None
        for mine, theirs in zip(expected, given):
            if mine != theirs:
                return f"expected {mine}, found {theirs}"
        return f"expected {len(expected)} tensors, found {len(given)}"


@functools.lru_cache(maxsize=64)
def plan_architecture(
    name: str, input_shape: tuple[int, ...], num_classes: int
) -> ArchitecturePlan:
    """Resolve architecture ``name`` for ``input_shape`` (C, H, W) and ``num_classes``."""
    architecture = get_architecture(name)
    if not architecture.is_layer_table:
        return _module_plan(architecture, tuple(int(s) for s in input_shape), int(num_classes))
    table = architecture.layers
    shape: tuple[int, ...] = tuple(int(s) for s in input_shape)
    counts = dict.fromkeys(KINDS.values(), 0)
    offset, planned = 0, []
    for layer in table:
        kind = KINDS[type(layer)]
        counts[kind] += 1
        module = kind if kind in SINGLE else f"{kind}{counts[kind]}"
        weight = bias = None
        if isinstance(layer, Conv):
            if len(shape) != 3:
                raise SpecError(
                    f"architecture {name!r}: a Conv layer needs an image input (C, H, W)"
                )
            c, h, w = shape
            k, s = layer.kernel_size, layer.stride
            if h < k or w < k:
                raise SpecError(f"input {h}x{w} is smaller than a {k}x{k} convolution kernel")
            out: tuple[int, ...] = (layer.out_channels, (h - k) // s + 1, (w - k) // s + 1)
            weight = ParameterSlot(f"{module}.weight", (layer.out_channels, c, k, k), offset)
        elif isinstance(layer, Linear):
            if len(shape) != 1:
                raise SpecError(f"architecture {name!r}: a Linear layer needs a flat input")
            out = (layer.out_features or num_classes,)
            weight = ParameterSlot(f"{module}.weight", (out[0], shape[0]), offset)
        elif isinstance(layer, MaxPool):
            c, h, w = shape
            out = (c, h // layer.kernel_size, w // layer.kernel_size)
        elif isinstance(layer, GlobalAvgPool):
            if len(shape) != 3:
                raise SpecError(f"architecture {name!r}: GlobalAvgPool needs an image input")
            out = (shape[0],)
        elif isinstance(layer, Flatten):
            out = (math.prod(shape),)
        else:
            out = shape
        if weight is not None:
            offset += weight.size
            if layer.bias:
                bias = ParameterSlot(f"{module}.bias", (out[0],), offset)
                offset += bias.size
        drop_index = counts["drop"] - 1 if kind == "drop" else -1
        planned.append(PlannedLayer(layer, kind, module, shape, out, weight, bias, drop_index))
        shape = out
    return ArchitecturePlan(name, tuple(int(s) for s in input_shape), int(num_classes),
                            tuple(planned))  # fmt: skip


def build_module(architecture: Architecture, input_shape: tuple[int, ...], num_classes: int):
    """An instance of a module architecture (imports its builder, and torch, on first use)."""
    import importlib

    module_name, _, function = str(architecture.builder).partition(":")
    builder = getattr(importlib.import_module(module_name), function)
    return builder(tuple(input_shape), int(num_classes))


def _module_plan(
    architecture: Architecture, input_shape: tuple[int, ...], num_classes: int
) -> ArchitecturePlan:
    """The layout of a module architecture, read off an instance on torch's meta device (shapes
    only, no memory): its state_dict order, buffers marked, each tensor in C order."""
    import torch

    if len(input_shape) != 3:
        raise SpecError(f"architecture {architecture.name!r} needs image inputs (C, H, W)")
    with torch.device("meta"):
        module = build_module(architecture, input_shape, num_classes)
    buffers = {name for name, _ in module.named_buffers()}
    slots, offset = [], 0
    for name, tensor in module.state_dict().items():
        slots.append(ParameterSlot(name, tuple(tensor.shape), offset, buffer=name in buffers))
        offset += slots[-1].size
    return ArchitecturePlan(architecture.name, input_shape, num_classes, (), tuple(slots))
