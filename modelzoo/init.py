"""Seeded weight initialisation methods (the ``init`` factor of the zoos).

The papers name the methods (uniform, normal, Kaiming and Xavier, uniform or normal) but not the
ranges of the untuned ones. We use U(-0.5, 0.5) for ``uniform`` and N(0, 0.5/sqrt(3)) for
``normal`` (the same variance, a different shape): wider than Kaiming for most layers of the zoo
CNNs, as the 2022 paper describes ("uniformly sampled from a wider range of values rather than
using well-tuned initializations"). Biases follow the weight distribution for the untuned methods
and start at zero for the Kaiming/Xavier ones. Parameters are drawn in layout order from one
generator seeded by the run, so initial weights depend on the seed and the method alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .seeding import generator

UNIFORM_BOUND = 0.5
NORMAL_STD = UNIFORM_BOUND / math.sqrt(3.0)

Initialiser = Callable[[torch.Tensor, bool, torch.Generator], None]


def _uniform(t: torch.Tensor, is_bias: bool, gen: torch.Generator) -> None:
    nn.init.uniform_(t, -UNIFORM_BOUND, UNIFORM_BOUND, generator=gen)


def _normal(t: torch.Tensor, is_bias: bool, gen: torch.Generator) -> None:
    nn.init.normal_(t, 0.0, NORMAL_STD, generator=gen)


def _fan_based(method: Callable[..., torch.Tensor], **kwargs) -> Initialiser:
    def init(t: torch.Tensor, is_bias: bool, gen: torch.Generator) -> None:
        if is_bias:
            nn.init.zeros_(t)
        else:
            method(t, generator=gen, **kwargs)

    return init


INITIALISERS: dict[str, Initialiser] = {
    "uniform": _uniform,
    "normal": _normal,
    "kaiming_uniform": _fan_based(nn.init.kaiming_uniform_, nonlinearity="relu"),
    "kaiming_normal": _fan_based(nn.init.kaiming_normal_, nonlinearity="relu"),
    "xavier_uniform": _fan_based(nn.init.xavier_uniform_),
    "xavier_normal": _fan_based(nn.init.xavier_normal_),
}


def initialize(model: nn.Module, method: str, seed: int) -> nn.Module:
    """Initialise every parameter of ``model`` in place with ``method``, seeded by the run.

    BatchNorm layers (ResNet-18) are not weights of the method: they start as torch starts them
    (scale 1, shift 0, fresh running statistics), as in the Model Zoos generators."""
    init = INITIALISERS[method]
    gen = generator(seed, "init")
    normalisers = {
        name for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    }  # fmt: skip
    with torch.no_grad():
        for name, module in model.named_modules():
            if name in normalisers:
                module.reset_parameters()
        for name, param in model.named_parameters():
            if name.rpartition(".")[0] in normalisers:
                continue
            init(param, name.endswith("bias"), gen)
    return model
