"""``--from unterthiner``: the flat arrays of the Small CNN Zoo (Unterthiner et al., 2020).

The zoo of *Predicting Neural Network Accuracy from Weights* ships, per dataset, three files:

* ``weights.npy``: float32 ``[checkpoints, 4970]``, one row per checkpoint of every network,
  each a flattened TensorFlow model (read with ``allow_pickle=False``, memory-mapped);
* ``metrics.csv.gz``: one row per checkpoint, in the same order: ``modeldir`` (the network),
  ``step`` (which checkpoint: the epochs 0, 1, 2, 3, 20, 40, 60, 80, 86), ``test_accuracy``,
  ``test_loss``, ``train_accuracy``, ``train_loss`` and the ``config.*`` hyperparameters;
* ``layout.csv``: ``varname`` (``sequential/conv2d/kernel:0``), ``start``/``end`` (or
  ``start_idx``/``end_idx``) and ``shape`` of every tensor in a row, in TensorFlow's order.

Shapes are parsed with a regular expression, never evaluated. Kernels are converted from
TensorFlow's order to PyTorch's (a conv kernel ``[kh, kw, in, out]`` becomes ``[out, in, kh,
kw]``, a dense kernel ``[in, out]`` becomes ``[out, in]``) by one precomputed gather, so a
checkpoint's stored vector is the architecture's layout (``cnn_unterthiner``) with every number
of the source kept. The images the networks saw were scaled to [-1, 1] and, for CIFAR-10 and
SVHN, made grey: the imported zoo's dataset section says so (``normalize`` 0.5/0.5,
``grayscale``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelZooError
from .common import ImportedModel, check_activation, register_importer, scalar, write_zoo

ARCHITECTURE = "cnn_unterthiner"
FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")
DATASETS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
            "svhn_cropped": "svhn"}  # fmt: skip  (TFDS name -> modelzoo name)
METRICS = {"test_accuracy": "test_acc", "test_loss": "test_loss",
           "train_accuracy": "train_acc", "train_loss": "train_loss"}  # fmt: skip
# config.* columns that are modelzoo training settings (lower-cased: Keras' names)
TRAINING = {"activation": "activation", "dropout": "dropout", "learning_rate": "lr",
            "optimizer": "optimizer", "w_init": "init", "batchsize": "batch_size"}  # fmt: skip
LOWER = ("activation", "optimizer")
SKIPPED = {"dataset", "epochs", "random_seed"}  # the zoo's dataset, training.epochs, the seed
SHAPE = re.compile(r"^\s*[(\[]\s*(\d+(?:\s*,\s*\d+)*)?\s*,?\s*[)\]]\s*$")
KERNEL_ORDER = {4: (3, 2, 0, 1), 2: (1, 0)}  # TensorFlow -> PyTorch axes


def parse_shape(text: Any) -> tuple[int, ...] | None:
    """``"(3, 3, 1, 16)"`` -> ``(3, 3, 1, 16)``; None unless it is a tuple of integers."""
    match = SHAPE.match(str(text))
    if match is None:
        return None
    return tuple(int(v) for v in match.group(1).split(",")) if match.group(1) else ()


def _fail(path: Path, message: str) -> ModelZooError:
    return ModelZooError(f"{path}: {message}")


def _read_layout(path: Path) -> list[tuple[str, str, int, int, tuple[int, ...]]]:
    """(layer, kernel|bias, start, end, TensorFlow shape) for every row, in flat-vector order."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise _fail(path, f"cannot read the layout CSV ({error})") from None
    start = next((c for c in ("start", "start_idx") if c in table.columns), None)
    end = next((c for c in ("end", "end_idx") if c in table.columns), None)
    if "varname" not in table.columns or "shape" not in table.columns or not start or not end:
        raise _fail(path, f"expected columns varname, start (or start_idx), end (or end_idx), "
                          f"shape; found {', '.join(table.columns)}")  # fmt: skip
    rows = []
    for number, row in enumerate(table.itertuples(index=False), start=2):  # line 1: the header
        record = row._asdict()
        name = str(record["varname"])
        layer, _, tensor = name.rpartition("/")
        kind = tensor.split(":")[0]
        shape = parse_shape(record["shape"])
        try:
            first, last = int(record[start]), int(record[end])
        except ValueError:
            first = last = -1
        if kind not in ("kernel", "bias") or not layer:
            raise _fail(path, f"line {number}: varname {name!r} is not a layer's kernel or bias")
        if shape is None:
            raise _fail(path, f"line {number}: shape {record['shape']!r} is not a tuple of "
                              "integers such as (3, 3, 1, 16)")  # fmt: skip
        if first < 0 or last - first != int(np.prod(shape)):
            raise _fail(path, f"line {number}: {name}: {start} {record[start]!r} to {end} "
                              f"{record[end]!r} does not hold {int(np.prod(shape))} values "
                              f"of shape {shape}")  # fmt: skip
        rows.append((layer, kind, first, last, shape))
    return sorted(rows, key=lambda r: r[2])


def tf_to_torch_index(layout_path: Path, rows: list, plan: Any) -> np.ndarray:
    """``index`` with ``torch_vector = tf_vector[index]`` (the plan's layout order), checking that
    every TensorFlow tensor lands on the plan's tensor of the same shape, each value once."""
    layers = list(dict.fromkeys(row[0] for row in rows))
    trained = plan.trained_layers
    if len(layers) != len(trained):
        raise _fail(layout_path, f"{len(layers)} layers ({', '.join(layers)}); {plan.name} has "
                                 f"{len(trained)}")  # fmt: skip
    index = np.full(plan.parameters, -1, dtype=np.int64)
    for layer, planned in zip(layers, trained):
        for _, kind, first, last, shape in (r for r in rows if r[0] == layer):
            slot = planned.weight if kind == "kernel" else planned.bias
            positions = np.arange(first, last).reshape(shape)
            if kind == "kernel" and len(shape) in KERNEL_ORDER:
                positions = positions.transpose(KERNEL_ORDER[len(shape)])
            if slot is None or positions.shape != tuple(slot.shape):
                expected = "no bias" if slot is None else f"shape {tuple(slot.shape)}"
                raise _fail(layout_path, f"{layer}/{kind}: TensorFlow shape {shape} is "
                                         f"{positions.shape} in PyTorch's order; {plan.name} "
                                         f"expects {expected} for {planned.module}")  # fmt: skip
            index[slot.span] = positions.reshape(-1)
    if np.any(index < 0) or not np.array_equal(np.sort(index), np.arange(plan.parameters)):
        raise _fail(layout_path, f"the rows do not cover {plan.parameters} values once each "
                                 f"(the layout of {plan.name})")  # fmt: skip
    return index


def _loader(weights: np.ndarray, rows: np.ndarray, index: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(weights[rows], dtype=np.float32)[:, index]


def _models(table: Any, weights: np.ndarray, index: np.ndarray, source: Path) -> list:
    """One ImportedModel per ``modeldir``, its checkpoints ordered by ``step``."""
    config = [c for c in table.columns if c.startswith("config.")]
    models = []
    for modeldir, rows in table.groupby("modeldir", sort=False, dropna=False):
        rows = rows.sort_values("step", kind="stable")
        first = rows.iloc[0]
        model = ImportedModel(source=f"{source} modeldir {modeldir}", epochs=rows["step"].tolist())
        model.seed = int(first["config.random_seed"]) if "config.random_seed" in rows else 0
        model.factors["modeldir"] = str(modeldir)
        for column in config:
            key, value = column[len("config."):], first[column]
            if key in SKIPPED:
                continue
            if key in TRAINING:
                value = str(value).lower() if key in LOWER else value
                model.training[TRAINING[key]] = scalar(value)
            else:
                model.factors[key] = scalar(value) if value == value else ""
        model.metrics = {name: rows[column].astype(float).tolist()
                         for column, name in METRICS.items() if column in rows}  # fmt: skip
        if rows["step"].duplicated().any():
            model.error = f"{model.source}: a step is listed twice"
        elif check_activation(model):
            model.flat = _loader(weights, rows["row"].to_numpy(), index)
        models.append(model)
    return models


@register_importer("unterthiner")
def import_unterthiner(source: Path, out: Path, dataset: str | None, architecture: str | None,
                       properties: Path | None = None, overrides: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Import a Small CNN Zoo folder (weights.npy, metrics.csv.gz, layout.csv)."""
    import pandas as pd

    from ...architectures import plan_architecture
    from ...data import DataConfig, dataset_info, input_shape, num_classes
    from ...spec.loading import apply_overrides

    source = Path(source)
    if not source.is_dir():
        raise ModelZooError(f"{source}: no such folder (a Small CNN Zoo folder holds "
                            f"{', '.join(FILES)})")  # fmt: skip
    for name in FILES:
        if not (source / name).is_file():
            raise _fail(source, f"{name} is missing (a Small CNN Zoo folder holds "
                                f"{', '.join(FILES)})")  # fmt: skip
    rows = _read_layout(source / "layout.csv")
    try:
        table = pd.read_csv(source / "metrics.csv.gz")
        weights = np.load(source / "weights.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise _fail(source, f"cannot read the zoo's files ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''})") from None  # fmt: skip
    missing = [c for c in ("modeldir", "step") if c not in table.columns]
    if missing:
        raise _fail(source / "metrics.csv.gz", f"column {missing[0]!r} is missing")
    if weights.ndim != 2 or not np.issubdtype(weights.dtype, np.floating):
        raise _fail(source / "weights.npy", f"expected a 2-D float array, found {weights.ndim}-D "
                                            f"{weights.dtype}")  # fmt: skip
    if len(table) != weights.shape[0]:
        raise _fail(source, f"metrics.csv.gz has {len(table)} rows, weights.npy "
                            f"{weights.shape[0]}: they must describe the same checkpoints")  # fmt: skip
    named = str(table["config.dataset"].iloc[0]) if "config.dataset" in table else None
    name = dataset or DATASETS.get(named or "")
    if name is None:
        raise ModelZooError(f"{source}: the zoo's dataset {named!r} is not one modelzoo knows "
                            f"({', '.join(DATASETS)}); pass --dataset")  # fmt: skip
    section = _dataset_section(name, dataset_info(name).channels)
    section = apply_overrides({"dataset": section}, overrides, "--set").get("dataset", section)
    shape = input_shape(DataConfig.from_section(section))
    plan = plan_architecture(architecture or ARCHITECTURE, shape, num_classes(section["name"]))
    if weights.shape[1] != plan.parameters:
        raise _fail(source / "weights.npy", f"rows of {weights.shape[1]} values; {plan.name} on "
                                            f"{shape} has {plan.parameters}")  # fmt: skip
    index = tf_to_torch_index(source / "layout.csv", rows, plan)
    table = table.assign(row=np.arange(len(table)))
    if not pd.api.types.is_integer_dtype(table["step"]) or (table["step"] < 0).any():
        raise _fail(source / "metrics.csv.gz", "column 'step' must hold epoch numbers >= 0")
    models = _models(table, weights, index, source)
    return write_zoo(Path(out), Path(out).name, section, plan.name, models, str(source),
                     overrides)  # fmt: skip


def _dataset_section(name: str, channels: int) -> dict[str, Any]:
    """The preprocessing of the zoo's training script: pixels scaled to [-1, 1], grey images."""
    section: dict[str, Any] = {"name": name, "normalize": {"mean": [0.5], "std": [0.5]}}
    if channels == 3:
        section["grayscale"] = True
    return section
