"""Zoo specs: the YAML format, its validation, and its deterministic expansion into runs.

One table (``FIELDS``) declares every key: type, default, allowed values and the sentence that
documents it. Validation, defaults, ``modelzoo spec schema`` (JSON Schema) and docs/specs.md all
come from it, so they cannot drift apart.

Expansion: the grid is a cartesian product taken in the order its keys are written; every
configuration is trained with every seed of ``seeds``; model ids count up from 0 in that order. The
same spec always gives the same runs, ids and seeds.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import SpecError

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
    from .data import list_datasets

    return list_datasets()


def _architectures() -> list[str]:
    from .nets import list_architectures

    return list_architectures()


def _activations() -> list[str]:
    from .nets import ACTIVATIONS

    return list(ACTIVATIONS)


def _inits() -> list[str]:
    from .train.init import INITIALISERS

    return list(INITIALISERS)


def _optimizers() -> list[str]:
    from .train.optim import OPTIMIZERS

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
        "epochs": Field("int", "Training epochs per model.", required=True, minimum=1),
        "batch_size": Field("int", "Mini-batch size.", default=32, minimum=1),
        "optimizer": Field("choice", "Optimiser.", default="adam", choices=_optimizers),
        "lr": Field("float", "Learning rate.", default=1e-3, minimum=0.0, exclusive_minimum=True),
        "weight_decay": Field("float", "L2 penalty (torch.optim semantics).", default=0.0, minimum=0.0),
        "momentum": Field("float", "SGD momentum.", default=0.0, minimum=0.0, maximum=1.0),
        "dropout": Field("float", "Dropout rate after each activation.", default=0.0, minimum=0.0,
                         maximum=0.95),
        "activation": Field("choice", "Activation function.", default="tanh", choices=_activations),
        "init": Field("choice", "Weight initialisation method.", default="uniform", choices=_inits),
        "loss": Field("choice", "Training loss.", default="cross_entropy", choices=("cross_entropy",)),
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
            "Epochs whose weights are stored: 'all' (0 = initialisation), a list, or {every: k}.",
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
        return hashlib.sha256(canonical_json(core).encode()).hexdigest()

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


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys (a silent override is a classic spec bug)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value, got {_type_name(key)}",
                key_node.start_mark,
            )  # fmt: skip
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def bundled_spec_dir() -> Path:
    return Path(__file__).resolve().parent / "specs"


def list_bundled_specs() -> list[str]:
    return sorted(p.stem for p in bundled_spec_dir().glob("*.yaml"))


def resolve_spec_path(argument: str | Path) -> Path:
    """A path if it exists, else a bundled spec by file name (``specs/x.yaml``, ``x.yaml``, ``x``)."""
    path = Path(argument)
    if path.is_file():
        return path
    if path.exists():
        raise SpecError(f"{path}: is not a file")
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    stem = stem[: -len(".yml")] if stem.endswith(".yml") else stem
    candidate = bundled_spec_dir() / f"{stem}.yaml"
    if candidate.is_file():
        return candidate
    raise SpecError(
        f"{argument}: no such file, and no bundled spec named {stem!r} "
        f"(bundled: {', '.join(list_bundled_specs())})"
    )


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read: {error}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.constructor.ConstructorError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}" if mark else "?"
        problem = error.problem or str(error)
        if "could not determine a constructor" in problem:
            problem = (
                f"YAML tag not allowed ({problem.split('tag')[-1].strip()}); specs hold data only"
            )
        raise SpecError(f"{path}: {where}: {problem}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{path}: malformed YAML at {where}: {problem}") from None


def load_spec(source: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """Load, override (``key.path=value``), validate and resolve a spec file."""
    path = resolve_spec_path(source)
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides, str(path))
    return validate(raw, str(path))


def apply_overrides(raw: Any, overrides: Iterable[str], where: str) -> Any:
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. training.epochs=5")
        key, _, text = item.partition("=")
        key = key.strip()
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise SpecError(f"--set {key}: cannot parse value {text!r} as YAML") from None
        if not isinstance(raw, dict):
            raise SpecError(f"{where}: the spec must be a mapping")
        if key.startswith("grid."):
            raw.setdefault("grid", {})
            if not isinstance(raw["grid"], dict):
                raise SpecError(f"{where}: grid: expected a mapping")
            grid_key = key[len("grid.") :]
            target = grid_target(grid_key)
            for written in list(raw["grid"]):  # replace the key in whichever spelling it has
                if target is not None and grid_target(str(written)) == target:
                    del raw["grid"][written]
            raw["grid"][grid_key] = value
            continue
        parts = key.split(".")
        target = raw
        for part in parts[:-1]:
            if not isinstance(target.get(part, {}), dict):
                raise SpecError(f"--set {key}: {part} is not a section")
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return raw


# --------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip


def check_value(spec_field: Field, value: Any, path: str) -> tuple[Any, list[str]]:
    """Coerce and check one value; returns (value, problems)."""
    kind = spec_field.kind
    problems: list[str] = []

    def bounds(number: float) -> None:
        low, high = spec_field.minimum, spec_field.maximum
        if low is not None and (number < low or (spec_field.exclusive_minimum and number <= low)):
            problems.append(f"{path}: expected a number {'>' if spec_field.exclusive_minimum else '>='}"
                            f" {low}, got {number}")  # fmt: skip
        if high is not None and number > high:
            problems.append(f"{path}: expected a number <= {high}, got {number}")

    if kind == "int_or_auto" and value == "auto":
        return value, problems
    if kind == "int_or_null" and value is None:
        return value, problems
    if kind in ("int", "int_or_null", "int_or_auto"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)
            else:
                extra = (
                    " or 'auto'"
                    if kind == "int_or_auto"
                    else " or null"
                    if kind == "int_or_null"
                    else ""
                )
                problems.append(
                    f"{path}: expected an integer{extra}, got {_type_name(value)} {value!r}"
                )
                return value, problems
        bounds(value)
    elif kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
            except ValueError:
                problems.append(f"{path}: expected a number, got string {value!r}")
                return value, problems
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            problems.append(f"{path}: expected a finite number, got {_type_name(value)} {value!r}")
            return value, problems
        value = float(value)
        bounds(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {_type_name(value)} {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {_type_name(value)} {value!r}")
    elif kind == "choice":
        allowed = spec_field.allowed() or []
        if not isinstance(value, str) or value not in allowed:
            problems.append(f"{path}: unknown value {value!r}; choose one of: {', '.join(allowed)}")
    elif kind == "dict":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {_type_name(value)}")
    elif kind == "int_list":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            problems.append(f"{path}: expected a non-empty list of integers, got {value!r}")
    elif kind == "stored_epochs":
        ok = value == "all" or (
            isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                      and v >= 0 for v in value)
        ) or (isinstance(value, dict) and set(value) == {"every"} and isinstance(value["every"], int)
              and not isinstance(value["every"], bool) and value["every"] >= 1)  # fmt: skip
        if not ok:
            problems.append(f"{path}: expected 'all', a list of epochs >= 0, or {{every: k}} with k >= 1;"
                            f" got {value!r}")  # fmt: skip
    return value, problems  # kind "any": checked by its own rule (dataset.normalize)


def _check_normalize(value: Any, path: str) -> list[str]:
    if value is None or value in ("dataset", "imagenet"):
        return []
    if isinstance(value, dict) and set(value) == {"mean", "std"}:
        mean, std = value["mean"], value["std"]
        if (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) and mean
                and all(isinstance(v, int | float) for v in mean + std)
                and all(s > 0 for s in std)):  # fmt: skip
            return []
    return [f"{path}: expected null, 'dataset', 'imagenet' or {{mean: [...], std: [...]}} with "
            f"positive std of equal length; got {value!r}"]  # fmt: skip


def _validate_section(name: str, raw: Any, where: str) -> tuple[dict, list[str]]:
    fields = FIELDS[name]
    prefix = f"{name}." if name else ""
    if not isinstance(raw, dict):
        return {}, [f"{where}: {name or 'spec'}: expected a mapping, got {_type_name(raw)}"]
    problems = []
    resolved: dict = {}
    for key in raw:
        if key not in fields and not (name == "" and key in (*SECTIONS, "grid", "format")):
            problems.append(f"{where}: {prefix}{key}: unknown key; expected one of: "
                            f"{', '.join(fields if name else [*fields, *SECTIONS, 'grid'])}")  # fmt: skip
    for key, spec_field in fields.items():
        if key in raw and not (raw[key] is None and spec_field.kind not in ("int_or_null", "any")):
            value, found = check_value(spec_field, raw[key], f"{where}: {prefix}{key}")
            problems += found
            resolved[key] = value
        elif spec_field.required:
            problems.append(f"{where}: {prefix}{key}: required key is missing ({spec_field.doc})")
        else:
            resolved[key] = copy.deepcopy(spec_field.default)
    return resolved, problems


def validate(raw: Any, where: str = "<spec>") -> Spec:
    """Check a raw spec mapping; every problem is reported, each with its key path."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: the spec must be a YAML mapping, got {_type_name(raw)}")
    if "format" in raw and raw["format"] != FORMAT:
        raise SpecError(f"{where}: format: expected {FORMAT!r}, got {raw['format']!r}")
    resolved, problems = _validate_section("", raw, where)
    for section in SECTIONS:
        if section in raw:
            value, found = _validate_section(section, raw[section], where)
        elif section in REQUIRED_SECTIONS:
            value, found = {}, [f"{where}: {section}: required section is missing"]
        else:
            value, found = _validate_section(section, {}, where)
        problems += found
        resolved[section] = value
    name = resolved.get("name")
    if isinstance(name, str) and not ZOO_NAME.fullmatch(name):
        problems.append(f"{where}: name: expected a folder name of letters, digits, '.', '_' and "
                        f"'-' that starts with a letter or digit; got {name!r}")  # fmt: skip
    problems += _check_normalize(
        resolved.get("dataset", {}).get("normalize"), f"{where}: dataset.normalize"
    )
    resolved["grid"], found = _validate_grid(raw.get("grid", {}), where)
    problems += found
    problems += _validate_seeds(resolved.get("seeds", {}), where)
    training = resolved.get("training", {})
    stored = resolved.get("store", {}).get("epochs")
    if isinstance(training.get("epochs"), int) and isinstance(stored, list):
        bad = [e for e in stored if e > training["epochs"]]
        if bad:
            problems.append(f"{where}: store.epochs: epochs {bad} exceed training.epochs "
                            f"({training['epochs']})")  # fmt: skip
    if problems:
        raise SpecError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems: " + "; ".join(problems))  # fmt: skip
    resolved["format"] = FORMAT
    return Spec(resolved=resolved, path=where)


def grid_target(key: str) -> tuple[str, str] | None:
    """('training', 'lr') for 'training.lr' or the shorthand 'lr'; None if not a grid-able key."""
    if "." in key:
        section, _, leaf = key.partition(".")
        if section in GRID_SECTIONS and leaf in FIELDS[section]:
            return section, leaf
        return None
    if key in FIELDS["training"]:
        return "training", key
    return None


def _validate_grid(raw: Any, where: str) -> tuple[dict, list[str]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"{where}: grid: expected a mapping of key -> list of values"]
    problems, grid = [], {}
    for key, values in raw.items():
        target = grid_target(str(key))
        if target is None:
            problems.append(f"{where}: grid.{key}: not a key that can vary; use training.<key> or "
                            f"dataset.<key> (training keys: {', '.join(FIELDS['training'])})")  # fmt: skip
            continue
        section, leaf = target
        if f"{section}.{leaf}" in grid:
            written = next(k for k in raw if grid_target(str(k)) == target)
            problems.append(f"{where}: grid.{section}.{leaf}: given twice (as {written!r} and "
                            f"{key!r}); keep one")  # fmt: skip
            continue
        if not isinstance(values, list) or not values:
            problems.append(
                f"{where}: grid.{key}: expected a non-empty list of values, got {values!r}"
            )
            continue
        checked = []
        for i, value in enumerate(values):
            value, found = check_value(FIELDS[section][leaf], value, f"{where}: grid.{key}[{i}]")
            problems += found
            checked.append(value)
        if len({canonical_json(v) for v in checked}) != len(checked):
            problems.append(f"{where}: grid.{key}: values repeat: {values!r}")
        grid[f"{section}.{leaf}"] = checked
    return grid, problems


def _validate_seeds(seeds: dict, where: str) -> list[str]:
    modes = [m for m in ("values", "range", "fixed", "random") if seeds.get(m) is not None]
    if len(modes) != 1:
        return [f"{where}: seeds: expected exactly one of values, range, fixed, random; got "
                f"{', '.join(modes) or 'none'}"]  # fmt: skip
    if modes == ["range"]:
        r = seeds["range"]
        if len(r) != 2 or r[0] > r[1]:
            return [f"{where}: seeds.range: expected [first, last] with first <= last, got {r!r}"]
    if modes == ["values"] and len(set(seeds["values"])) != len(seeds["values"]):
        return [f"{where}: seeds.values: seeds repeat"]
    if modes == ["random"]:
        if seeds["low"] > seeds["high"]:
            return [f"{where}: seeds: low ({seeds['low']}) is above high ({seeds['high']})"]
        if seeds["random"] > seeds["high"] - seeds["low"] + 1:
            return [f"{where}: seeds.random: cannot draw {seeds['random']} distinct seeds from "
                    f"[{seeds['low']}, {seeds['high']}]"]  # fmt: skip
    return []


# --------------------------------------------------------------------------- expansion


def resolve_stored_epochs(value: Any, epochs: int) -> tuple[int, ...]:
    if value == "all":
        return tuple(range(epochs + 1))
    if isinstance(value, dict):
        every = value["every"]
        return tuple(sorted({*range(0, epochs + 1, every), epochs}))
    return tuple(sorted(set(value)))


def configurations(spec: Spec) -> list[dict[str, Any]]:
    """The grid's cartesian product, in written key order (first key varies slowest)."""
    grid = spec.resolved["grid"]
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def seeds_per_configuration(spec: Spec, n_configurations: int) -> list[list[int]]:
    seeds = spec.resolved["seeds"]
    if seeds.get("values") is not None:
        return [list(seeds["values"])] * n_configurations
    if seeds.get("range") is not None:
        first, last = seeds["range"]
        return [list(range(first, last + 1))] * n_configurations
    if seeds.get("fixed") is not None:
        return [list(range(1, seeds["fixed"] + 1))] * n_configurations
    rng = np.random.default_rng(seeds["meta_seed"])
    drawn = []
    for _ in range(n_configurations):
        chosen: list[int] = []
        while len(chosen) < seeds["random"]:
            value = int(rng.integers(seeds["low"], seeds["high"] + 1))
            if value not in chosen:
                chosen.append(value)
        drawn.append(chosen)
    return drawn


def factor_column(grid_key: str) -> str:
    section, _, leaf = grid_key.partition(".")
    return leaf if section == "training" else f"{section}_{leaf}"


def expand(spec: Spec) -> list[Run]:
    """All runs of the zoo in model-id order."""
    configs = configurations(spec)
    seed_lists = seeds_per_configuration(spec, len(configs))
    runs: list[Run] = []
    for config, seeds in zip(configs, seed_lists):
        sections = {
            s: copy.deepcopy(spec.resolved[s]) for s in ("dataset", "architecture", "training")
        }
        for grid_key, value in config.items():
            section, _, leaf = grid_key.partition(".")
            sections[section][leaf] = value
        epochs = sections["training"]["epochs"]
        stored = resolve_stored_epochs(spec.resolved["store"]["epochs"], epochs)
        if not stored or max(stored) > epochs:
            raise SpecError(f"{spec.path}: store.epochs: stored epochs {list(stored)} exceed "
                            f"training.epochs ({epochs}) of a grid configuration")  # fmt: skip
        factors = {factor_column(k): v for k, v in config.items()}
        for seed in seeds:
            runs.append(
                Run(
                    model_id=len(runs),
                    seed=int(seed),
                    dataset=sections["dataset"],
                    architecture=sections["architecture"],
                    training=sections["training"],
                    stored_epochs=stored,
                    factors=factors,
                )
            )
    return runs


# --------------------------------------------------------------------------- JSON Schema


def _field_schema(spec_field: Field) -> dict:
    kind = spec_field.kind
    out: dict[str, Any] = {"description": spec_field.doc}
    if spec_field.default is not None and not spec_field.required:
        out["default"] = spec_field.default
    number_bounds = {}
    if spec_field.minimum is not None:
        key = "exclusiveMinimum" if spec_field.exclusive_minimum else "minimum"
        number_bounds[key] = spec_field.minimum
    if spec_field.maximum is not None:
        number_bounds["maximum"] = spec_field.maximum
    if kind == "int":
        out.update(type="integer", **number_bounds)
    elif kind == "int_or_null":
        out["anyOf"] = [{"type": "integer", **number_bounds}, {"type": "null"}]
    elif kind == "int_or_auto":
        out["anyOf"] = [{"type": "integer", **number_bounds}, {"const": "auto"}]
    elif kind == "float":
        out.update(type="number", **number_bounds)
    elif kind == "bool":
        out["type"] = "boolean"
    elif kind == "str":
        out["type"] = "string"
    elif kind == "choice":
        out["enum"] = spec_field.allowed()
    elif kind == "dict":
        out["type"] = "object"
    elif kind == "int_list":
        out.update(type="array", items={"type": "integer"}, minItems=1)
    elif kind == "stored_epochs":
        out["anyOf"] = [
            {"const": "all"},
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            {"type": "object", "properties": {"every": {"type": "integer", "minimum": 1}},
             "required": ["every"], "additionalProperties": False},
        ]  # fmt: skip
    return out


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the spec format, for editors and CI checks."""

    def section(name: str) -> dict:
        fields = FIELDS[name]
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: _field_schema(f) for k, f in fields.items()},
            "required": [k for k, f in fields.items() if f.required],
        }

    grid_props = {}
    for section_name in GRID_SECTIONS:
        for leaf, spec_field in FIELDS[section_name].items():
            grid_props[f"{section_name}.{leaf}"] = {
                "type": "array",
                "minItems": 1,
                "items": _field_schema(spec_field),
            }
    for leaf, spec_field in FIELDS["training"].items():
        grid_props[leaf] = {"type": "array", "minItems": 1, "items": _field_schema(spec_field)}
    top = section("")
    top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    top["title"] = "modelzoo zoo spec"
    top["properties"]["format"] = {"const": FORMAT}
    top["properties"]["name"]["pattern"] = f"^{ZOO_NAME.pattern}$"
    for name in SECTIONS:
        top["properties"][name] = section(name)
    top["properties"]["grid"] = {"type": "object", "additionalProperties": False,
                                 "properties": grid_props}  # fmt: skip
    top["required"] = ["name", "dataset", "architecture", "training"]
    return top


def describe_fields() -> list[tuple[str, Field]]:
    """(dotted key, field) for every key, in table order: used to write docs/specs.md."""
    return [(f"{s}.{k}" if s else k, f) for s, fields in FIELDS.items() for k, f in fields.items()]


def runs_by_shape(runs: Iterable[Run]) -> Mapping[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.shape_key, []).append(run)
    return groups
