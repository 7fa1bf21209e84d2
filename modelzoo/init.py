"""Seeded weight initialisation schemes (the ``init`` factor of the zoos), with exact parameters.

The papers name the methods (uniform, normal, Kaiming and Xavier, uniform or normal) but not their
parameters; the authors' published generators settle them (the 2021 repository's ``MLP``/``CNN``
and the Model Zoos generators' ``initialize_weights``): every method is torch's initialiser with
its default arguments — ``uniform_`` is U(0, 1), ``normal_`` is N(0, 1), Kaiming uses a = 0,
fan-in, gain sqrt(2), Xavier gain 1 — and every bias starts at 0.01. Those are the plain names.

Other parameters are spelled out in the name, so a zoo says exactly what it did:
``uniform(-0.5, 0.5)``, ``normal(0, 0.1)``, and any scheme with ``bias=VALUE`` (a constant) or
``bias=same`` (biases drawn like the weights): ``uniform(-0.5, 0.5, bias=same)`` is what modelzoo
called ``uniform`` before it followed the authors' code, ``kaiming_uniform(bias=0)`` its old
Kaiming. ``describe`` gives the exact distributions; the writer records them in every manifest.

Parameters are drawn in layout order from one generator seeded by the run, so initial weights
depend on the seed and the scheme alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelZooError
from .seeding import generator

DEFAULT_BIAS = 0.01  # the authors' generators: "set bias to some small non-zero value"
FLOAT32_MAX = 3.4e38
SAME = "same"


@dataclass(frozen=True)
class Method:
    """One torch initialiser: how it draws a weight tensor, and its positional parameters."""

    draw: str  # name of the torch.nn.init function
    parameters: tuple[str, ...]  # names of the positional arguments a spelled-out form takes
    defaults: tuple[float, ...]  # torch's defaults for them
    keywords: tuple[tuple[str, object], ...] = ()  # fixed torch keyword arguments
    text: str = ""  # the distribution, for describe(); {0}, {1} are the parameters


_KAIMING = (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu"))  # torch's defaults
METHODS: dict[str, Method] = {
    "uniform": Method("uniform_", ("low", "high"), (0.0, 1.0), text="U({0}, {1})"),
    "normal": Method("normal_", ("mean", "std"), (0.0, 1.0), text="N({0}, {1}^2)"),
    "kaiming_uniform": Method(
        "kaiming_uniform_", (), (), _KAIMING,
        "U(-b, b), b = sqrt(6 / fan_in) (torch kaiming_uniform_ defaults)",
    ),
    "kaiming_normal": Method(
        "kaiming_normal_", (), (), _KAIMING, "N(0, 2 / fan_in) (torch kaiming_normal_ defaults)"
    ),
    "xavier_uniform": Method(
        "xavier_uniform_", (), (), (), "U(-b, b), b = sqrt(6 / (fan_in + fan_out)) (torch defaults)"
    ),
    "xavier_normal": Method(
        "xavier_normal_", (), (), (), "N(0, 2 / (fan_in + fan_out)) (torch defaults)"
    ),
}  # fmt: skip

_FORM = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class InitScheme:
    """A parsed ``init`` value: method, its parameters, and how biases start."""

    method: str
    arguments: tuple[float, ...]
    bias: float | str  # a constant, or SAME

    @property
    def name(self) -> str:
        """The canonical spelling (plain name when every setting is the default)."""
        spec = METHODS[self.method]
        parts = []
        if self.arguments != spec.defaults:
            parts += [_number(a) for a in self.arguments]
        if self.bias != DEFAULT_BIAS:
            parts.append(f"bias={self.bias if self.bias == SAME else _number(self.bias)}")
        return f"{self.method}({', '.join(parts)})" if parts else self.method

    def describe(self) -> dict[str, str]:
        """The exact distributions, as the manifest records them."""
        spec = METHODS[self.method]
        weight = spec.text.format(*(_number(a) for a in self.arguments))
        bias = "as the weights" if self.bias == SAME else f"constant {_number(self.bias)}"
        return {"weights": weight, "biases": bias}

    def fill(self, tensor: torch.Tensor, is_bias: bool, gen: torch.Generator) -> None:
        """Draw one parameter tensor in place."""
        if is_bias and self.bias != SAME:
            nn.init.constant_(tensor, float(self.bias))
            return
        spec = METHODS[self.method]
        getattr(nn.init, spec.draw)(tensor, *self.arguments, generator=gen, **dict(spec.keywords))


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _expected() -> str:
    return (f"one of {', '.join(METHODS)}, or a spelled-out form such as uniform(-0.5, 0.5), "
            "normal(0, 0.1), kaiming_uniform(bias=0), uniform(-0.5, 0.5, bias=same)")  # fmt: skip


def parse_init(value: object) -> InitScheme:
    """``init`` text -> InitScheme; a ModelZooError names what was expected."""
    match = _FORM.match(value) if isinstance(value, str) else None
    if match is None or match.group(1) not in METHODS:
        raise ModelZooError(f"unknown init {value!r}; expected {_expected()}")
    name, inside = match.group(1), match.group(2)
    spec = METHODS[name]
    positional: list[float] = []
    bias: float | str = DEFAULT_BIAS
    for part in [p.strip() for p in inside.split(",")] if inside and inside.strip() else []:
        key, equals, text = part.partition("=")
        if equals and key.strip() == "bias" and text.strip() == SAME:
            bias = SAME
        elif equals and key.strip() == "bias" and _NUMBER.match(text.strip()):
            bias = float(text)
        elif not equals and _NUMBER.match(part) and len(positional) < len(spec.parameters):
            positional.append(float(part))
        else:
            wanted = ", ".join((*spec.parameters, "bias=VALUE|same"))
            raise ModelZooError(f"init {value!r}: cannot read {part!r}; {name} takes ({wanted})")
    if positional and len(positional) != len(spec.parameters):
        raise ModelZooError(f"init {value!r}: {name} takes {len(spec.parameters)} numbers "
                            f"({', '.join(spec.parameters)}), got {len(positional)}")  # fmt: skip
    arguments = tuple(positional) if positional else spec.defaults
    if bias == SAME and not spec.parameters:
        raise ModelZooError(f"init {value!r}: {name} draws from the fan of a weight matrix, which "
                            "a bias does not have; give biases a constant (bias=0.01, bias=0)")  # fmt: skip
    if any(abs(a) > FLOAT32_MAX for a in arguments) or (bias != SAME and abs(bias) > FLOAT32_MAX):
        raise ModelZooError(f"init {value!r}: parameters must lie within float32's range "
                            f"(|x| <= {FLOAT32_MAX:.3g})")  # fmt: skip
    if name == "uniform" and not arguments[0] < arguments[1]:
        raise ModelZooError(f"init {value!r}: uniform needs low < high")
    if name == "normal" and not (arguments[1] > 0 and math.isfinite(arguments[1])):
        raise ModelZooError(f"init {value!r}: normal needs std > 0")
    if not all(math.isfinite(a) for a in arguments) or (bias != SAME and not math.isfinite(bias)):
        raise ModelZooError(f"init {value!r}: parameters must be finite numbers")
    return InitScheme(name, arguments, bias)


def initialize(model: nn.Module, method: str, seed: int) -> nn.Module:
    """Initialise every parameter of ``model`` in place with scheme ``method``, seeded by the run.

    BatchNorm layers (ResNet-18) are not weights of the scheme: they start as torch starts them
    (scale 1, shift 0, fresh running statistics), as in the Model Zoos generators."""
    scheme = parse_init(method)
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
            scheme.fill(param, name.endswith("bias"), gen)
    return model
