"""What every importer shares: models read from a foreign layout, written as a modelzoo store.

An importer turns its layout into :class:`ImportedModel` records (factors, per-epoch state dicts,
per-epoch metrics, or the reason a model could not be read); :func:`write_zoo` resolves a spec for
them (dataset, architecture, the settings all models share), flattens every state dict in the
architecture's layout order, checking names and shapes exactly, and seals the shards with the
store's own writer, under a temporary folder renamed at the end. A model with any unreadable or
mismatched state is kept as ``failed`` with the reason, never dropped; one whose weights stop
being finite is kept as ``diverged`` at that epoch, its numbers as the source has them. Weights
are read one shard of models at a time (``ImportedModel.flat`` loads them on demand), so a zoo
larger than memory imports.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelZooError
from ...evaluation import SCALAR_METRICS
from ...store import format as fmt

TRAINING_KEYS = ("activation", "init", "optimizer", "lr", "weight_decay", "momentum", "dropout",
                 "batch_size")  # fmt: skip
IMPORTERS: dict[str, Callable[..., Path]] = {}
SHARD_MODELS = 64


def register_importer(name: str) -> Callable:
    """Add an import format (``modelzoo import --from NAME``)."""

    def add(function: Callable[..., Path]) -> Callable[..., Path]:
        IMPORTERS[name] = function
        return function

    return add


def get_importer(name: str) -> Callable[..., Path]:
    if name not in IMPORTERS:
        raise ModelZooError(f"--from: unknown format {name!r}; choose one of: "
                            f"{', '.join(sorted(IMPORTERS))}")  # fmt: skip
    return IMPORTERS[name]


@dataclass
class ImportedModel:
    """One model as a foreign layout holds it."""

    source: str  # where it came from (file or folder), for error messages and the table
    seed: int = 0
    factors: dict[str, Any] = field(default_factory=dict)  # other columns of the models table
    training: dict[str, Any] = field(default_factory=dict)  # TRAINING_KEYS it was trained with
    epochs: list[int] = field(default_factory=list)
    states: list[dict[str, np.ndarray] | None] = field(default_factory=list)  # per epoch
    metrics: dict[str, list[float]] = field(default_factory=dict)  # name -> per epoch
    error: str = ""  # why it cannot be read (then it is stored as failed)
    # instead of ``states``: loads the [epochs, P] weights in layout order when its shard is written
    flat: Callable[[], np.ndarray] | None = None


def scalar(value: Any) -> Any:
    """A value fit for a Parquet column (bool/int/float/str), else its string form."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, bool | int | float | str) else str(value)


ACTIVATION_SPELLINGS = {"leakyrelu": "leaky_relu", "swish": "silu"}  # other zoos' names


def check_activation(model: ImportedModel) -> bool:
    """Map another zoo's spelling of the model's activation to modelzoo's (the Model Zoos
    generators write ``leakyrelu``); a model whose activation modelzoo cannot build is recorded
    as failed with the reason, so ``zoo.model`` never meets it."""
    from ...architectures import ACTIVATION_NAMES

    if "activation" not in model.training:
        return True
    name = str(model.training["activation"]).lower()
    name = ACTIVATION_SPELLINGS.get(name, name)
    if name in ACTIVATION_NAMES:
        model.training["activation"] = name
        return True
    model.error = model.error or (f"{model.source}: activation {name!r} is not one modelzoo "
                                  f"builds ({', '.join(ACTIVATION_NAMES)})")  # fmt: skip
    return False


def write_zoo(
    out: Path,
    name: str,
    dataset: str | Mapping[str, Any],
    architecture: str,
    models: Sequence[ImportedModel],
    source: str,
    overrides: Iterable[str] = (),
) -> Path:
    """Write ``models`` as the zoo folder ``out`` (must not exist); returns ``out``. ``dataset``
    is a registered name or a spec ``dataset:`` section (preprocessing the models expect)."""
    from ...architectures import plan_architecture
    from ...data import DataConfig, input_shape, num_classes
    from ...spec.loading import apply_overrides
    from ...spec.records import Run
    from ...spec.validation import validate
    from ...store.writer import ZooWriter
    from ...train.result import RunResult

    out = Path(out)
    if out.exists():
        raise ModelZooError(f"{out}: already exists; choose another --out or delete it")
    if not models:
        raise ModelZooError(f"{source}: no models found to import")
    epochs = sorted({e for m in models for e in m.epochs}) or [0]
    shared = {k: models[0].training[k] for k in TRAINING_KEYS
              if k in models[0].training and _in_vocabulary(k, models[0].training[k])
              and all(m.training.get(k) == models[0].training[k] for m in models)}  # fmt: skip
    raw = {
        "name": name,
        "source": source,
        "description": f"imported by `modelzoo import` from {source}",
        "dataset": {"name": dataset} if isinstance(dataset, str) else dict(dataset),
        "architecture": {"name": architecture},
        "training": {**shared, "epochs": max(max(epochs), 1)},
        "seeds": {"values": sorted({int(m.seed) for m in models})},
        "store": {"epochs": epochs},
    }
    spec = validate(apply_overrides(raw, overrides, "--set"), f"{source} (imported)")
    resolved = spec.resolved
    shape = input_shape(DataConfig.from_section(resolved["dataset"]))
    classes = num_classes(resolved["dataset"]["name"])
    plan = plan_architecture(architecture, shape, classes)
    layout = [slot.as_dict() for slot in plan.layout]
    runs = []
    for model_id, model in enumerate(models):
        training = {**resolved["training"], **{k: v for k, v in model.training.items()
                                               if k in TRAINING_KEYS and k not in shared}}  # fmt: skip
        mine = tuple(model.epochs) if model.epochs and not model.error else tuple(epochs)
        runs.append(Run(model_id, int(model.seed), resolved["dataset"], resolved["architecture"],
                        training, mine, {k: scalar(v) for k, v in model.factors.items()}))  # fmt: skip
    dataset_entry = {"name": resolved["dataset"]["name"], "input_shape": list(shape),
                     "num_classes": classes, "spec": resolved["dataset"]}  # fmt: skip
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelZooError(f"--out {out}: cannot be created ({error.strerror})") from None
    staging = out.parent / f".{out.name}.{os.getpid()}{fmt.TMP_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        writer = ZooWriter(staging, spec, runs, dataset_entry, layout)
        try:
            for start in range(0, len(runs), SHARD_MODELS):
                part = zip(models[start : start + SHARD_MODELS], runs[start : start + SHARD_MODELS])
                writer.add([_result(model, run, plan, classes, RunResult) for model, run in part])
        finally:
            writer.close()
        os.rename(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _in_vocabulary(key: str, value: Any) -> bool:
    """Whether a spec's ``training.<key>`` accepts ``value`` (an optimiser such as RMSProp that
    modelzoo does not train with stays a per-model value, not a setting of the imported spec)."""
    from ...spec.fields import FIELDS

    allowed = FIELDS["training"][key].allowed()
    return allowed is None or value in allowed


def _result(model: ImportedModel, run: Any, plan: Any, classes: int, result_type: Any) -> Any:
    epochs, parameters = len(run.stored_epochs), plan.parameters
    error = model.error
    weights = np.full((epochs, parameters), np.nan, dtype=np.float32)
    if not error and model.flat is not None:
        try:
            weights[:] = model.flat()
        except ModelZooError as problem:
            error = f"{model.source}: {problem}"
    elif not error:
        for row, (epoch, state) in enumerate(zip(model.epochs, model.states)):
            try:
                weights[row] = flatten(state, plan.layout)
            except ModelZooError as problem:
                error = f"{model.source}: epoch {epoch}: {problem}"
                break
    if error:
        return result_type.failed(run.model_id, run.key, epochs, parameters, classes, error)
    metrics = {}
    for name in SCALAR_METRICS:
        values = model.metrics.get(name)
        metrics[name] = (np.full(epochs, np.nan) if values is None
                         else np.asarray(values, dtype=np.float64))  # fmt: skip
    if "gap" not in model.metrics:
        metrics["gap"] = metrics["train_acc"] - metrics["test_acc"]
    f1 = np.full((epochs, classes), np.nan, dtype=np.float32)
    result = result_type(run.model_id, run.key, weights, metrics, f1)
    broken = np.flatnonzero(~np.isfinite(weights).all(axis=1))
    if broken.size:
        from ...train.result import STATUS_DIVERGED

        result.status, result.diverged_epoch = STATUS_DIVERGED, int(run.stored_epochs[broken[0]])
        result.error = f"{model.source}: weights not finite at epoch {result.diverged_epoch}"
    return result


def flatten(state: dict[str, Any] | None, layout: Sequence[Any]) -> np.ndarray:
    """One float32 vector in layout order; names and shapes must match exactly."""
    if state is None:
        raise ModelZooError("no readable state dict")
    expected = {slot.name for slot in layout}
    extra = sorted(set(state) - expected)
    if extra:
        raise ModelZooError(f"unexpected tensors {extra[:4]} (expected {sorted(expected)})")
    parts = []
    for slot in layout:
        if slot.name not in state:
            raise ModelZooError(f"tensor {slot.name!r} is missing")
        value = np.asarray(state[slot.name], dtype=np.float32)
        if tuple(value.shape) != tuple(slot.shape):
            raise ModelZooError(f"{slot.name}: shape {tuple(value.shape)}, expected {slot.shape}")
        parts.append(value.reshape(-1))
    return np.concatenate(parts)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A state dict from ``.safetensors`` or a torch file read with ``weights_only=True``."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable or unsafe file is one recorded reason
        raise ModelZooError(f"{path}: cannot read a state dict ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''})") from None  # fmt: skip
    if (
        isinstance(loaded, dict)
        and "state_dict" in loaded
        and isinstance(loaded["state_dict"], dict)
    ):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ModelZooError(f"{path}: not a state dict (a mapping of names to tensors)")
    return {str(k): v.detach().cpu().numpy() for k, v in loaded.items()}


def match_architecture(states: dict[str, np.ndarray], shape: tuple, classes: int) -> str:
    """The registered architecture whose layout has exactly these tensor names and shapes."""
    from ...architectures import list_architectures, plan_architecture

    wanted = {k: tuple(v.shape) for k, v in states.items()}
    found = []
    for name in list_architectures():
        try:
            plan = plan_architecture(name, shape, classes)
        except Exception:  # an architecture that does not fit this input
            continue
        if {s.name: tuple(s.shape) for s in plan.layout} == wanted:
            found.append(name)
    if not found:
        raise ModelZooError(f"no registered architecture has the state dict's shapes {wanted}; "
                            "register one or pass --architecture")  # fmt: skip
    return found[0]
