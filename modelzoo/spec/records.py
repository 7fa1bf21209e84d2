"""A validated spec and the runs it expands to: the two values every later stage works with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .fields import NOT_IN_FINGERPRINT

# The training settings every models table has a column for (grid keys beyond them are added).
FACTOR_COLUMNS = (
    "seed", "activation", "init", "optimizer", "lr", "weight_decay", "momentum", "dropout",
    "batch_size", "epochs",
)  # fmt: skip

# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Spec:
    """A validated spec with every default filled in (``resolved`` is what the zoo records)."""

    resolved: dict
    path: str = "<spec>"

    @property
    def name(self) -> str:
        return self.resolved["name"]

    def section(self, name: str) -> dict:
        return self.resolved[name]

    @property
    def fingerprint(self) -> str:
        """Hash of everything that decides the models: not prose, nor execution hints other than
        the engine (the engines agree to float tolerance, not bit for bit, and a zoo's models
        must all come from one)."""
        core = {k: v for k, v in self.resolved.items() if k not in NOT_IN_FINGERPRINT}
        core["engine"] = self.resolved.get("execution", {}).get("engine", "vectorized")
        core["init_schemes"] = self.init_schemes()  # a name's meaning is part of the zoo
        return hashlib.sha256(canonical_json(core).encode()).hexdigest()

    def init_schemes(self) -> dict[str, dict[str, str]]:
        """Every ``init`` the spec names -> its exact distributions (part of the fingerprint)."""
        names = [self.resolved["training"]["init"], *self.resolved["grid"].get("training.init", [])]
        return describe_inits(names)

    def stored_epochs(self) -> tuple[int, ...]:
        """The zoo's epoch axis: stored epochs of the longest training in the grid."""
        longest = max(
            [self.resolved["training"]["epochs"], *self.resolved["grid"].get("training.epochs", [])]
        )
        return resolve_stored_epochs(self.resolved["store"]["epochs"], longest)


@dataclass(frozen=True)
class Run:
    """One model of the zoo: everything its training depends on."""

    model_id: int
    seed: int
    dataset: dict
    architecture: dict
    training: dict
    stored_epochs: tuple[int, ...]
    factors: dict = field(default_factory=dict)  # the grid values of this run, by column name

    @property
    def key(self) -> str:
        """A content hash of the run: a resumed zoo checks it before trusting stored weights."""
        payload = {
            "seed": self.seed,
            "dataset": self.dataset,
            "architecture": self.architecture,
            "training": self.training,
            "stored_epochs": list(self.stored_epochs),
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    @property
    def shape_key(self) -> str:
        """Runs with equal shape keys can be trained together by the vectorised engine."""
        t = self.training
        payload = {
            "dataset": self.dataset,
            "architecture": self.architecture,
            "activation": t["activation"],
            "optimizer": t["optimizer"],
            "batch_size": t["batch_size"],
            "epochs": t["epochs"],
            "loss": t["loss"],
            "dropout": t["dropout"] > 0,
            "stored_epochs": list(self.stored_epochs),
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    def columns(self) -> dict[str, Any]:
        """The run's generating factors as the models table stores them: seed, the training
        settings of :data:`FACTOR_COLUMNS`, then the grid's other keys (``dataset_<key>``)."""
        row = {c: self.seed if c == "seed" else self.training[c] for c in FACTOR_COLUMNS}
        row.update({c: v for c, v in self.factors.items() if c not in row})
        return row


def varying_columns(runs: Iterable[Run]) -> tuple[dict[str, list], dict[str, Any]]:
    """(columns that vary with their sorted distinct values, columns that are constant) over
    ``runs``: what ``--dry-run`` and ``info`` call factors and settings."""
    values: dict[str, dict[str, Any]] = {}
    for run in runs:
        for column, value in run.columns().items():
            values.setdefault(column, {})[canonical_json(value)] = value
    varying, constant = {}, {}
    for column, distinct in values.items():
        if len(distinct) > 1:
            varying[column] = sorted(distinct.values(), key=lambda v: (str(type(v)), v))
        else:
            constant[column] = next(iter(distinct.values()))
    return varying, constant


def resolve_stored_epochs(value: Any, epochs: int) -> tuple[int, ...]:
    if value == "all":
        return tuple(range(epochs + 1))
    if isinstance(value, dict):  # every k-th epoch from ``first`` (default 0), and the last
        every, first = value["every"], value.get("first", 0)
        return tuple(sorted({*range(first, epochs + 1, every), epochs}))
    return tuple(sorted(set(value)))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def describe_inits(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """``init`` names -> their exact distributions; a name modelzoo does not draw (the init of an
    imported zoo, e.g. glorot_uniform) is described as the source zoo's."""
    from ..errors import ModelZooError
    from ..init import parse_init

    described = {}
    for name in dict.fromkeys(str(n) for n in names):
        try:
            described[name] = parse_init(name).describe()
        except ModelZooError:
            described[name] = {"weights": "as the source zoo drew them (not a modelzoo scheme)",
                               "biases": "as the source zoo drew them"}  # fmt: skip
    return described
