"""Zoo architectures as torch modules: ``build_model`` turns an architecture plan into a plain
``nn.Sequential`` (the reference trainer, ``Zoo.model``), plus the flat-vector conversions.

The layer tables and their resolution into shapes, module names and parameter slots live in
modelzoo.architectures (no torch); this module only adds the torch side, so a model built here has
exactly the parameter names, shapes and order of the store's layout (tested for every
architecture).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from .architectures import (
    ACTIVATION_NAMES,
    Act,
    ArchitecturePlan,
    Conv,
    Drop,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    ParameterSlot,
    build_module,
    get_architecture,
    plan_architecture,
)
from .seeding import hashed_uniform

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "gelu": functional.gelu,
    "leaky_relu": functional.leaky_relu,
    "silu": functional.silu,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


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


class GlobalAveragePool(nn.Module):
    """The mean of each channel over its H x W: ``[B, C, H, W]`` -> ``[B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def modules_of(plan: ArchitecturePlan, activation: str, dropout: float) -> nn.Module:
    """The plan as a module: ``nn.Sequential`` for a layer table (``Drop`` rows become modules
    only when ``dropout`` > 0), the builder's module otherwise."""
    architecture = get_architecture(plan.name)
    architecture.check_settings(activation, dropout)
    if not plan.is_layer_table:
        return build_module(architecture, plan.input_shape, plan.num_classes)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for row in plan.layers:
        layer = row.layer
        if isinstance(layer, Conv):
            module: nn.Module = nn.Conv2d(row.shape_in[0], layer.out_channels, layer.kernel_size,
                                          stride=layer.stride, bias=layer.bias)  # fmt: skip
        elif isinstance(layer, Linear):
            module = nn.Linear(row.shape_in[0], row.shape_out[0], bias=layer.bias)
        elif isinstance(layer, MaxPool):
            module = nn.MaxPool2d(layer.kernel_size)
        elif isinstance(layer, GlobalAvgPool):
            module = GlobalAveragePool()
        elif isinstance(layer, Act):
            module = Activation(activation)
        elif isinstance(layer, Drop):
            if dropout <= 0:
                continue
            module = SeededDropout(dropout, row.drop_index)
        elif isinstance(layer, Flatten):
            module = nn.Flatten()
        modules[row.module] = module
    return nn.Sequential(modules)


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    activation: str = "tanh",
    dropout: float = 0.0,
) -> nn.Module:
    """A plain ``nn.Module`` of the architecture; parameters keep torch's default init."""
    return modules_of(plan_architecture(name, tuple(input_shape), num_classes), activation, dropout)


def parameter_layout(model: nn.Module) -> list[ParameterSlot]:
    """The flattening convention read off a module (``named_parameters`` order, C order): what
    ``ArchitecturePlan.layout`` must equal for the modules built from it."""
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


def flatten_state(model: nn.Module, layout: tuple[ParameterSlot, ...]) -> torch.Tensor:
    """The model's stored vector: every slot of ``layout`` (parameters and buffers) from its
    state dict, as float32 (BatchNorm's int64 step counter included, exact below 2**24)."""
    state = model.state_dict()
    return torch.cat([state[s.name].detach().reshape(-1).to(torch.float32) for s in layout])


def load_flat_state(
    model: nn.Module, flat: torch.Tensor, layout: tuple[ParameterSlot, ...]
) -> nn.Module:
    """Copy a stored vector into the model's parameters *and* buffers (by layout name)."""
    if flat.numel() != sum(s.size for s in layout):
        raise ValueError(f"weight vector has {flat.numel()} values, the layout "
                         f"{sum(s.size for s in layout)}")  # fmt: skip
    state = model.state_dict()
    with torch.no_grad():
        for slot in layout:
            target = state[slot.name]
            target.copy_(flat[slot.span].reshape(target.shape).to(target.dtype))
    return model
