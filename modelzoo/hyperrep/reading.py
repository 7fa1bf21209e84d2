"""A run folder read back, every file checked against what ``train-ae`` writes.

``load_autoencoder``, ``probe --embeddings`` and ``sample`` trust these files; a hand-edited,
truncated or foreign one must fail here with one line naming the file and the key, not later
with a KeyError, a NaN or a silently different model. A run's config.yaml records every setting
(the resolved config), so a missing one is an error, never a default filled in.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..architectures import plan_architecture
from ..errors import ModelZooError
from ..tokens import layer_groups
from . import folder
from .config import FIELDS, RUN_FORMAT, defaults, merge, resolve, run_settings
from .data import Normalization


def _count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# the ``zoo:`` record (api.zoo_record): what each field must be, and how to say so
ZOO_FIELDS = {
    "path": (lambda v: isinstance(v, str) and v != "", "the zoo folder's path"),
    "name": (lambda v: isinstance(v, str) and v != "", "the zoo's name"),
    "spec_fingerprint": (lambda v: v is None or isinstance(v, str), "a fingerprint or null"),
    "parameters": (lambda v: _count(v, 1), "a positive integer"),
    "architecture": (lambda v: isinstance(v, str) and v != "", "an architecture name"),
    "input_shape": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(_count(d, 1) for d in v),
        "a non-empty list of positive integers",
    ),
    "num_classes": (lambda v: _count(v, 2), "an integer >= 2"),
    "splits": (
        lambda v: isinstance(v, list) and len(v) == 3 and all(_number(f) and f >= 0 for f in v),
        "three fractions",
    ),
    "split_seed": (lambda v: _count(v, 0), "a non-negative integer"),
    "epochs": (
        lambda v: isinstance(v, list) and len(v) > 0 and all(_count(e, 0) for e in v),
        "a non-empty list of epochs",
    ),
    "split_states": (
        lambda v: isinstance(v, list) and len(v) == 3 and all(_count(n, 0) for n in v),
        "three state counts (train, val, test)",
    ),
}


def read_run_config(path: Path) -> dict[str, Any]:
    """config.yaml: its format, every setting present and valid (checked as a ``--config`` file
    is), and the ``zoo:`` record of what the run was trained on."""
    raw = folder.read_yaml(path)
    if raw.get("format") != RUN_FORMAT:
        raise ModelZooError(f"{path}: format: expected {RUN_FORMAT!r}, got {raw.get('format')!r}")
    for key in FIELDS:
        section, name = key.split(".")
        if not isinstance(raw.get(section), dict) or name not in raw[section]:
            raise ModelZooError(f"{path}: {key}: missing (a run's config.yaml records every setting)")
    zoo = raw.get("zoo")
    if not isinstance(zoo, dict):
        raise ModelZooError(f"{path}: zoo: expected the mapping of the zoo the run was trained on")
    for key, (valid, expected) in ZOO_FIELDS.items():
        if key not in zoo or not valid(zoo[key]):
            raise ModelZooError(f"{path}: zoo.{key}: expected {expected}, got {zoo.get(key)!r}")
    return {**raw, **resolve(merge(defaults(), run_settings(raw), str(path)), str(path))}


def plan_of(config: dict[str, Any], path: Path) -> Any:
    """The architecture plan of the zoo a run was trained on, its size checked against the record."""
    zoo = config["zoo"]
    try:
        plan = plan_architecture(zoo["architecture"], tuple(zoo["input_shape"]), zoo["num_classes"])
    except ModelZooError as error:
        raise ModelZooError(f"{path}: zoo: {error}") from None
    if plan.parameters != zoo["parameters"]:
        raise ModelZooError(f"{path}: zoo.parameters: {zoo['parameters']}, but {zoo['architecture']} "
                            f"on input {zoo['input_shape']} has {plan.parameters}")  # fmt: skip
    return plan


def read_normalization(path: Path, plan: Any) -> Normalization:
    """normalization.json: per-layer mean and std of the train split, and whether they apply."""
    stats = folder.read_json(path)
    names = sorted(name for name, _ in layer_groups(plan.layout))
    expected = (f'expected {{"layers": {{name: {{"mean": finite, "std": finite >= 0}}}} for the '
                f'layers {", ".join(names)}, "applied": true/false}}')  # fmt: skip
    layers = stats.get("layers") if isinstance(stats, dict) else None
    if (
        not isinstance(layers, dict)
        or sorted(layers) != names
        or not isinstance(stats.get("applied"), bool)
    ):
        raise ModelZooError(f"{path}: {expected}")
    for name, values in layers.items():
        mean = values.get("mean") if isinstance(values, dict) else None
        std = values.get("std") if isinstance(values, dict) else None
        if not (_number(mean) and _number(std) and std >= 0):
            raise ModelZooError(f"{path}: layers.{name}: {expected}")
    pairs = {name: (float(v["mean"]), float(v["std"])) for name, v in layers.items()}
    return Normalization.of(plan.layout, pairs, stats["applied"])


def load_weights(model: Any, weights: dict[str, Any], path: Path) -> None:
    """The ``model.`` tensors of a checkpoint into ``model``; a mismatch is one short line."""
    own = {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
    try:
        model.load_state_dict(own)
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
        problems = [p.strip() for p in str(error).split("\n\t")[1:] if p.strip()]
        first = folder.one_line(problems[0]) if problems else folder.one_line(error)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelZooError(f"{path}: the weights do not fit the autoencoder config.yaml "
                            f"describes: {first[:300]}{more}") from None  # fmt: skip


def read_embeddings(path: Path, latent: int) -> pd.DataFrame:
    """embeddings.parquet: model_id, epoch, split and z_0..z_{latent-1}, nothing missing."""
    frame = folder.read_parquet(path)
    needed = ["model_id", "epoch", "split", *(f"z_{i}" for i in range(latent))]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise ModelZooError(f"{path}: missing column(s) {shown} (expected model_id, epoch, "
                            f"split, z_0..z_{latent - 1})")  # fmt: skip
    if frame.empty:
        raise ModelZooError(f"{path}: no rows (expected one per recorded state of the zoo)")
    for column in ("model_id", "epoch"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise ModelZooError(f"{path}: {column}: expected integers, got {frame[column].dtype}")
        if (frame[column] < 0).any():
            raise ModelZooError(f"{path}: {column}: expected integers >= 0, got "
                                f"{int(frame[column].min())}")  # fmt: skip
    extra = [c for c in frame.columns if c.startswith("z_") and c not in needed]
    if extra:
        raise ModelZooError(f"{path}: unexpected column(s) {', '.join(extra[:4])} (the run's "
                            f"latent has {latent}: z_0..z_{latent - 1})")  # fmt: skip
    if not all(pd.api.types.is_float_dtype(frame[c]) for c in needed[3:]):
        raise ModelZooError(f"{path}: z_0..z_{latent - 1}: expected floating-point columns")
    splits = set(frame["split"].astype(str).unique()) - {"train", "val", "test", "none"}
    if splits:
        raise ModelZooError(f"{path}: split: unknown value(s) {sorted(map(str, splits))}; "
                            "expected train, val, test or none")  # fmt: skip
    if frame.duplicated(["model_id", "epoch"]).any():
        raise ModelZooError(f"{path}: a (model_id, epoch) appears twice")
    z = frame[needed[3:]].to_numpy(dtype=np.float64)
    if not np.isfinite(z).all():
        raise ModelZooError(f"{path}: {int((~np.isfinite(z).all(axis=1)).sum())} row(s) hold "
                            "NaN or inf embeddings")  # fmt: skip
    return frame
