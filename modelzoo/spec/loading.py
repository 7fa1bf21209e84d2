"""Reading spec files: safe YAML (``modelzoo.yamlfile``: no tags, no duplicate keys), bundled specs by name, and
``--set KEY=VALUE`` overrides applied before validation."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ..yamlfile import read_yaml as read_yaml_data
from .records import Spec
from .validation import grid_target, validate

# --------------------------------------------------------------------------- loading


def bundled_spec_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "specs"


def list_bundled_specs() -> list[str]:
    """Names of the bundled specs: the papers' zoos, then the Model Zoos dataset's
    (``model_zoos/``); every file name is unique, so a name is enough to find one."""
    return [p.stem for p in _bundled_files()]


def _bundled_files() -> list[Path]:
    root = bundled_spec_dir()
    return sorted(root.rglob("*.yaml"), key=lambda p: (len(p.relative_to(root).parts), p.stem))


def resolve_spec_path(argument: str | Path) -> Path:
    """A path if it exists, else a bundled spec by file name (``specs/x.yaml``, ``x.yaml``, ``x``)."""
    path = Path(argument)
    if path.is_file():
        return path
    if path.exists():
        raise SpecError(f"{path}: is not a file")
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    stem = stem[: -len(".yml")] if stem.endswith(".yml") else stem
    for candidate in _bundled_files():
        if candidate.stem == stem:
            return candidate
    raise SpecError(
        f"{argument}: no such file, and no bundled spec named {stem!r} "
        f"(bundled: {', '.join(list_bundled_specs())})"
    )


def read_yaml(path: Path) -> Any:
    """A spec file's data (safe, no duplicate keys); failures are one-line ``SpecError``s."""
    return read_yaml_data(path, SpecError)


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
        varied = grid_target(key) if len(key.split(".")) == 2 else None
        grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
        if varied is not None and any(grid_target(str(k)) == varied for k in grid):
            raise SpecError(f"--set {key}: the spec's grid varies {key}, so a fixed value would be "
                            f"ignored; set grid.{key}=[...] instead")  # fmt: skip
        parts = key.split(".")
        target = raw
        for part in parts[:-1]:
            if not isinstance(target.get(part, {}), dict):
                raise SpecError(f"--set {key}: {part} is not a section")
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return raw
