"""``--from ray-tune``: Ray Tune experiment folders as the Model Zoos generators write them.

One trial folder per model holds ``params.json`` (its configuration: the generating factors),
``result.json`` (JSON lines, one per epoch; line 0 is the untrained model) and
``checkpoint_XXXXXX/checkpoints`` (a torch state dict of that epoch, read with
``weights_only=True``). Ray's own ``.pkl`` files are ignored, never unpickled. The architecture is
the registered one whose layout matches the state dict's names and shapes (``--architecture``
overrides), for the dataset named with ``--dataset``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ...errors import ModelZooError
from .common import (
    ImportedModel,
    check_activation,
    match_architecture,
    read_state_dict,
    register_importer,
    scalar,
    write_zoo,
)

CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")
# params.json keys of the Model Zoos generators -> modelzoo's training settings
KNOWN = {"model::nlin": "activation", "model::dropout": "dropout", "model::init_type": "init",
         "optim::optimizer": "optimizer", "optim::lr": "lr", "optim::wd": "weight_decay",
         "optim::momentum": "momentum", "training::batchsize": "batch_size"}  # fmt: skip
SEED_KEYS = ("seed", "model::init_seed")
METRIC_NAMES = {  # result.json spellings -> store names
    "train_acc": "train_acc", "acc_train": "train_acc", "train_loss": "train_loss",
    "loss_train": "train_loss", "test_acc": "test_acc", "acc_test": "test_acc",
    "test_loss": "test_loss", "loss_test": "test_loss", "val_acc": "val_acc",
    "acc_val": "val_acc", "val_loss": "val_loss", "loss_val": "val_loss",
}  # fmt: skip


def _flat(params: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}::"))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    """A recorded metric as a float (JSON null: NaN); None for text that is not a number."""
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_trial(trial: Path) -> ImportedModel:
    """One trial folder as an ImportedModel (error set when something cannot be read)."""
    model = ImportedModel(source=str(trial))
    try:
        raw = json.loads((trial / "params.json").read_text(encoding="utf-8"))
        lines = (trial / "result.json").read_text(encoding="utf-8").splitlines()
        results = [json.loads(line) for line in lines if line.strip()]
        if not isinstance(raw, dict) or not all(isinstance(r, dict) for r in results):
            raise ValueError("params.json and every result.json line must be a JSON object")
        params = _flat(raw)
        by_epoch = {int(r.get("epoch", i)): r for i, r in enumerate(results)}
    except (OSError, ValueError, TypeError) as error:
        model.error = f"{trial}: {error}"
        return model
    for key, value in params.items():
        if key in SEED_KEYS and isinstance(value, int):
            model.seed = value
        elif key in KNOWN:
            model.training[KNOWN[key]] = value.lower() if isinstance(value, str) else value
        elif isinstance(value, bool | int | float | str) or value is None:
            model.factors[key.replace("::", "_")] = scalar(value) if value is not None else ""
    check_activation(model)
    checkpoints = sorted((int(m.group(1)), p) for p in trial.iterdir()
                         if (m := CHECKPOINT.match(p.name)) and p.is_dir())  # fmt: skip
    if not checkpoints:
        model.error = f"{trial}: no checkpoint_XXXXXX folders"
        return model
    for epoch, folder in checkpoints:
        model.epochs.append(epoch)
        try:
            model.states.append(read_state_dict(folder / "checkpoints"))
        except ModelZooError as error:
            model.states.append(None)
            model.error = model.error or str(error)
        record = by_epoch.get(epoch, {})
        for name in set(METRIC_NAMES.values()):
            values = [record[k] for k, n in METRIC_NAMES.items() if n == name and k in record]
            number = _number(values[0]) if values else float("nan")
            if number is None:
                number = float("nan")
                model.error = model.error or f"{trial}: result.json {name} {values[0]!r} is not a number"
            model.metrics.setdefault(name, []).append(number)
    model.metrics = {k: v for k, v in model.metrics.items() if any(x == x for x in v)}
    return model


@register_importer("ray-tune")
def import_ray_tune(source: Path, out: Path, dataset: str | None, architecture: str | None,
                    properties: Path | None = None, overrides: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Import every trial folder (one holding params.json) under ``source``."""
    from ...data import DataConfig, input_shape, num_classes

    if not dataset:
        raise ModelZooError("--from ray-tune needs --dataset (the images the models classify)")
    source = Path(source)
    if not source.is_dir():
        raise ModelZooError(f"{source}: no such experiment folder")
    trials = sorted(p.parent for p in source.rglob("params.json"))
    if not trials:
        raise ModelZooError(f"{source}: no Ray Tune trial folders (none holds params.json)")
    from tqdm import tqdm

    models = [read_trial(trial) for trial in tqdm(trials, desc="trials", unit="trial")]
    if architecture is None:
        readable = next((s for m in models for s in m.states if s is not None), None)
        if readable is None:
            raise ModelZooError(f"{source}: no checkpoint could be read to match an architecture")
        shape = input_shape(DataConfig.from_section({"name": dataset}))
        architecture = match_architecture(readable, shape, num_classes(dataset))
    return write_zoo(Path(out), Path(out).name, dataset, architecture, models, str(source),
                     overrides)  # fmt: skip
