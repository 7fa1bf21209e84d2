"""Checking a raw spec against the key table: every problem is collected with its key path and
what was expected, then reported as one SpecError line (the CLI exits 2, nothing is written)."""

from __future__ import annotations

import copy
import math
from typing import Any

from ..errors import SpecError
from .fields import (
    FIELDS,
    FORMAT,
    GRID_SECTIONS,
    REQUIRED_SECTIONS,
    SECTIONS,
    ZOO_NAME,
    Field,
    type_name,
)
from .records import Spec, canonical_json

# --------------------------------------------------------------------------- validation


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
                    f"{path}: expected an integer{extra}, got {type_name(value)} {value!r}"
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
            problems.append(f"{path}: expected a finite number, got {type_name(value)} {value!r}")
            return value, problems
        value = float(value)
        bounds(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {type_name(value)} {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {type_name(value)} {value!r}")
    elif kind == "init":
        from ..errors import ModelZooError
        from ..init import parse_init

        try:
            value = parse_init(value).name  # canonical spelling: one name per scheme
        except ModelZooError as error:
            problems.append(f"{path}: {error}")
    elif kind == "choice":
        allowed = spec_field.allowed() or []
        if not isinstance(value, str) or value not in allowed:
            problems.append(f"{path}: unknown value {value!r}; choose one of: {', '.join(allowed)}")
    elif kind == "dict":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type_name(value)}")
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
        ) or (isinstance(value, dict) and "every" in value and set(value) <= {"every", "first"}
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())
              and value["every"] >= 1 and value.get("first", 0) >= 0)  # fmt: skip
        if not ok:
            problems.append(f"{path}: expected 'all', a list of epochs >= 0, or {{every: k}} with k >= 1"
                            f" (and optionally first: f >= 0); got {value!r}")  # fmt: skip
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
        return {}, [f"{where}: {name or 'spec'}: expected a mapping, got {type_name(raw)}"]
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
        raise SpecError(f"{where}: the spec must be a YAML mapping, got {type_name(raw)}")
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
        seen: dict[str, int] = {}
        for i, value in enumerate(checked):
            first = seen.setdefault(canonical_json(value), i)
            if first != i:
                same = "" if values[first] == values[i] else f" (both mean {value!r})"
                problems.append(f"{where}: grid.{key}: {values[i]!r} (item {i}) repeats "
                                f"{values[first]!r} (item {first}){same}")  # fmt: skip
                break
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
