"""The key table of the spec format: every key's type, default, allowed values and the sentence
that documents it. Validation, defaults, ``modelzoo spec schema`` and docs/specs.md are all read
from this one table, so they cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

FORMAT = "modelzoo-spec/1"

# --------------------------------------------------------------------------- the key table


@dataclass(frozen=True)
class Field:
    kind: str  # str, int, float, bool, choice, int_or_null, float_list, dict, stored_epochs, any
    doc: str
    default: Any = None
    required: bool = False
    choices: Callable[[], Iterable[str]] | tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False

    def allowed(self) -> list[str] | None:
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def _datasets() -> list[str]:
    from ..data import list_datasets

    return list_datasets()


def _architectures() -> list[str]:
    from ..architectures import list_architectures

    return list_architectures()


def _activations() -> list[str]:
    from ..architectures import ACTIVATION_NAMES

    return list(ACTIVATION_NAMES)


def _inits() -> list[str]:
    from ..init import METHODS

    return list(METHODS)


def _optimizers() -> list[str]:
    from ..optim import OPTIMIZERS

    return list(OPTIMIZERS)


FIELDS: dict[str, dict[str, Field]] = {
    "": {
        "name": Field("str", "Zoo name: one folder name under the store (letters, digits, . _ -).",
                      required=True),
        "description": Field("str", "What this zoo is for, one paragraph.", default=""),
        "source": Field("str", "Where the configuration comes from (paper, table).", default=""),
    },
    "dataset": {
        "name": Field("choice", "Image dataset the models learn.", required=True, choices=_datasets),
        "train_fraction": Field(
            "float",
            "Fraction of the train split used for training; the rest is a validation split.",
            default=1.0, minimum=0.0, maximum=1.0, exclusive_minimum=True,
        ),
        "split_seed": Field("int", "Seed of the train/validation split.", default=0, minimum=0),
        "resize": Field("int_or_null", "Resize images to this square side.", minimum=1),
        "crop": Field("int_or_null", "Keep the central crop x crop pixels (before any resize).",
                      minimum=1),
        "grayscale": Field("bool", "Convert RGB images to one grey channel.", default=False),
        "rgb": Field("bool", "Repeat a grey channel three times.", default=False),
        "normalize": Field(
            "any",
            "null, 'dataset' (per-channel train mean/std), 'imagenet', or {mean: [..], std: [..]}.",
        ),
        "download": Field("bool", "Try to download absent files.", default=True),
        "options": Field("dict", "Dataset-specific options (see docs/datasets.md).", default={}),
    },
    "architecture": {
        "name": Field("choice", "Architecture of every model.", required=True, choices=_architectures),
    },
    "training": {
        "epochs": Field("int", "Training epochs per model.", required=True, minimum=1,
                        maximum=1_000_000),
        "batch_size": Field("int", "Mini-batch size.", default=32, minimum=1),
        "optimizer": Field("choice", "Optimiser.", default="adam", choices=_optimizers),
        "lr": Field("float", "Learning rate.", default=1e-3, minimum=0.0, exclusive_minimum=True),
        "weight_decay": Field("float", "L2 penalty (torch.optim semantics).", default=0.0, minimum=0.0),
        "momentum": Field("float", "SGD momentum.", default=0.0, minimum=0.0, maximum=1.0),
        "dropout": Field("float", "Dropout rate after each activation.", default=0.0, minimum=0.0,
                         maximum=0.95),
        "activation": Field("choice", "Activation function.", default="tanh", choices=_activations),
        "init": Field(
            "init",
            "Weight initialisation: a torch initialiser with its defaults and biases 0.01, as the "
            "authors' generators (uniform = U(0, 1), normal = N(0, 1), kaiming_*, xavier_*), or "
            "spelled out: uniform(-0.5, 0.5), normal(0, 0.1), kaiming_uniform(bias=0), "
            "uniform(-0.5, 0.5, bias=same).",
            default="uniform", choices=_inits,
        ),
        "loss": Field("choice", "Training loss.", default="cross_entropy", choices=("cross_entropy",)),
        "schedule": Field(
            "choice",
            "Learning-rate schedule: constant, or onecycle (torch's OneCycleLR with max_lr = lr over "
            "all steps, as the Model Zoos ResNet-18 zoos; reference engine).",
            default="constant", choices=("constant", "onecycle"),
        ),
        "augment": Field(
            "choice",
            "Training-time image augmentation: none; crop_flip (random 4-pixel-padded crop + "
            "horizontal flip); flip_rotate (horizontal flip + rotation up to 20 degrees); seeded "
            "per run, reference engine.",
            default="none", choices=("none", "crop_flip", "flip_rotate"),
        ),
    },
    "seeds": {
        "values": Field("int_list", "Explicit seeds; every configuration is trained with each."),
        "range": Field("int_list", "[first, last] inclusive: every configuration with each seed."),
        "fixed": Field("int", "N fixed seeds 1..N per configuration.", minimum=1),
        "random": Field("int", "N random seeds per configuration, drawn from meta_seed.", minimum=1),
        "meta_seed": Field("int", "Seed of the random seed draw (recorded).", default=0, minimum=0),
        "low": Field("int", "Smallest random seed.", default=1, minimum=0),
        "high": Field("int", "Largest random seed.", default=1_000_000, minimum=0),
    },
    "store": {
        "epochs": Field(
            "stored_epochs",
            "Epochs whose weights are stored: 'all' (0 = initialisation), a list, or {every: k} "
            "(every k-th from epoch 0, or from `first: f`, plus the last).",
            default="all",
        ),
    },
    "execution": {
        "engine": Field("choice", "Training engine.", default="vectorized",
                        choices=("vectorized", "reference")),
        "models_per_task": Field("int_or_auto", "Models trained together in one task.",
                                 default="auto", minimum=1),
        "cpus_per_task": Field("float", "CPU cores per task.", default=1.0, minimum=0.0,
                               exclusive_minimum=True),
        "gpus_per_task": Field("float", "GPUs (or GPU share) per task.", default=0.0, minimum=0.0),
        "max_retries": Field("int", "Retries of a task whose worker died.", default=2, minimum=0),
    },
}  # fmt: skip

SECTIONS = tuple(k for k in FIELDS if k)
GRID_SECTIONS = ("training", "dataset")
REQUIRED_SECTIONS = ("dataset", "architecture", "training", "seeds")
NOT_IN_FINGERPRINT = ("execution", "description", "source")
ZOO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # one folder under the store, never a path


def type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip
