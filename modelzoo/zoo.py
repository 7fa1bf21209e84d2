"""The Zoo API: open a zoo folder, filter its models, read weights, get models back as nn.Modules.

``open_zoo(path)`` checks the manifest, both tables and their agreement up front (so a damaged zoo
fails with one line at open time) and opens weight shards only when weights are first read. A
:class:`Zoo` is a *view*: ``select`` and ``zoo[ids]`` return new views of the same open zoo that
share its tables and shard readers. Epoch arguments are always epoch *numbers* as listed in
``zoo.epochs``, never positions.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .architectures import ArchitecturePlan, ParameterSlot
from .errors import ModelZooError, StoreError
from .store import format as fmt
from .store.reader import ZooFiles, compact

if TYPE_CHECKING:
    from .data import ImageData

NOT_FACTORS = {
    "model_id",
    "run_key",
    "status",
    "error",
    "diverged_epoch",
    "shard",
    "row",
    "final_epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "gap",
}
DEFAULT_SPLITS = (0.7, 0.15, 0.15)
SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


def open_zoo(path: str | Path, verify: bool = False) -> Zoo:
    """Open the zoo folder ``path`` (``verify=True`` also checks every shard's sha256 first).

    ``path`` may be a published archive (``.tar.gz``, ``.tar.zst``): it is unpacked once, safely,
    into ``$MODELZOO_CACHE`` and read from there (see ``store/published.py``)."""
    from .store.published import resolve_zoo

    path = resolve_zoo(path)
    if verify:
        from .store.verify import verify_zoo

        problems = verify_zoo(path).problems
        if problems:
            raise StoreError(
                f"{path}: zoo is damaged: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
    core = ZooFiles(path)
    return Zoo(core, core.model_ids)


class Zoo:
    """A set of models of one opened zoo (all of them, or a selection)."""

    def __init__(self, core: ZooFiles, ids: np.ndarray) -> None:
        self._core = core
        self._ids = np.asarray(ids, dtype=np.int64)

    # ----------------------------------------------------------------------------- description
    path = property(lambda self: self._core.path)
    manifest = property(lambda self: self._core.manifest, doc="zoo.json as a dict (do not modify)")
    name = property(lambda self: str(self._core.manifest["name"]))
    architecture = property(lambda self: str(self._core.manifest["architecture"]["name"]))
    dataset_name = property(lambda self: str(self._core.manifest["dataset"]["name"]))
    input_shape = property(lambda self: tuple(self._core.manifest["dataset"]["input_shape"]))
    num_classes = property(lambda self: int(self._core.manifest["dataset"]["num_classes"]))
    parameters = property(lambda self: self._core.parameters)

    @property
    def epochs(self) -> list[int]:
        """The stored epoch numbers (0 = initialisation)."""
        return self._core.epochs.tolist()

    @property
    def layout(self) -> tuple[ParameterSlot, ...]:
        """Name, shape and offset of every parameter tensor in the flat weight vector."""
        return self._core.layout

    @property
    def plan(self) -> ArchitecturePlan:
        """The architecture resolved for the zoo's input (layers, shapes, parameter slots): what
        the weight structure (``WeightStructure.of(zoo)``) and model building read."""
        return self._core.plan()

    @property
    def model_ids(self) -> np.ndarray:
        return self._ids.copy()

    @functools.cached_property
    def _models(self) -> pd.DataFrame:
        frame = self._core.models
        return frame if self._ids.size == len(frame) else frame[frame["model_id"].isin(self._ids)]

    @property
    def models(self) -> pd.DataFrame:
        """One row per model: id, every generating factor, status, shard/row, final metrics."""
        return self._models.copy(deep=False)

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per (model, stored epoch): losses, accuracies, gap, seconds, f1_0..f1_{K-1}."""
        frame = self._core.metrics
        return frame[frame["model_id"].isin(self._ids)].reset_index(drop=True)

    def factors(self) -> dict[str, list]:
        """The generating factors that vary among the view's models (seed and hyperparameters),
        each with its sorted distinct values; constant ones are :meth:`settings`."""
        return {c: v for c, v in self._distinct().items() if len(v) > 1}

    def settings(self) -> dict[str, Any]:
        """The training settings every model of the view shares (the factors that do not vary)."""
        return {c: v[0] for c, v in self._distinct().items() if len(v) == 1}

    def _distinct(self) -> dict[str, list]:
        frame = self._models
        return {
            c: sorted(frame[c].dropna().unique().tolist())
            for c in frame.columns
            if c not in NOT_FACTORS and frame[c].notna().any()
        }

    def __len__(self) -> int:
        return int(self._ids.size)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, int | np.integer) and bool(np.isin(model_id, self._ids))

    def __repr__(self) -> str:
        status = self._models["status"].value_counts().to_dict()
        counts = ", ".join(f"{k} {v}" for k, v in sorted(status.items())) or "empty"
        total = len(self._core.models)
        size = f"{len(self)} models" if len(self) == total else f"{len(self)} of {total} models"
        shape = "x".join(map(str, self.input_shape))
        return (
            f"<Zoo {self.name!r}: {size} ({counts}); epochs {compact(self.epochs)}; "
            f"{self.architecture} ({self.parameters:,} parameters) on {self.dataset_name} "
            f"{shape}; {self.path}>"
        )

    def close(self) -> None:
        """Close the shard files (reopened on the next read)."""
        self._core.reader.close()

    def __enter__(self) -> Zoo:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- selection
    def select(
        self, where: str | Callable | Any = None, /, *, epoch: int | None = None, **equal: Any
    ) -> Zoo:
        """A view of the models that match every condition.

        ``where``: a ``DataFrame.query`` string (``"lr > 1e-4 and test_acc > 0.5"``), a callable
        taking the models frame and returning a boolean mask, or a boolean mask. ``equal``:
        column=value (a list/tuple/set means "one of", a callable a per-column predicate).
        ``epoch``: evaluate metric columns (test_acc, gap, f1_k, ...) at that stored epoch
        instead of the model's final epoch.
        """
        frame = self._models.reset_index(drop=True)
        if epoch is not None:
            self._core.epoch_index(np.asarray([epoch]))
            at = self.metrics
            at = at[at["epoch"] == epoch].drop(columns="epoch")
            frame = frame.drop(columns=[c for c in at.columns if c != "model_id" and c in frame])
            frame = frame.merge(at, on="model_id", how="left")
        mask = np.ones(len(frame), dtype=bool)
        if isinstance(where, str):
            try:
                result = np.asarray(frame.eval(where, level=1))
            except Exception as error:
                raise ModelZooError(
                    f"select({where!r}): {error}; columns: {', '.join(frame.columns)}"
                ) from None
            if result.dtype != bool or result.shape != mask.shape:
                raise ModelZooError(
                    f"select({where!r}): expected a boolean condition (one True/False per "
                    f"model), got {result.dtype} values"
                )
            mask &= result
        elif where is not None:
            result = where(frame) if callable(where) else where
            result = np.asarray(result, dtype=bool)
            if result.shape != mask.shape:
                raise ModelZooError(
                    f"select: mask of shape {result.shape}, expected ({len(frame)},)"
                )
            mask &= result
        for column, value in equal.items():
            if column not in frame.columns:
                raise ModelZooError(
                    f"select: unknown column {column!r}; choose one of: {', '.join(frame.columns)}"
                )
            values = frame[column]
            if callable(value):
                mask &= np.asarray(value(values), dtype=bool)
            elif isinstance(value, list | tuple | set | frozenset | np.ndarray):
                mask &= values.isin(list(value)).to_numpy()
            else:
                mask &= (values == value).to_numpy()
        return Zoo(self._core, frame["model_id"].to_numpy(dtype=np.int64)[mask])

    def __getitem__(self, ids: int | Iterable[int]) -> Zoo:
        """A view of the given model ids (all must be in this view)."""
        wanted = np.unique(_integers(ids, "model_ids"))
        self._core.positions(wanted, self._ids)
        return Zoo(self._core, wanted)

    # ----------------------------------------------------------------------------- weights
    def weights(
        self,
        model_ids: int | Iterable[int] | None = None,
        epochs: int | Iterable[int] | None = None,
    ) -> np.ndarray:
        """float32 weights ``[models, epochs, parameters]`` (defaults: every model of the view,
        every stored epoch); an int instead of a list drops that axis. NaN after divergence."""
        ids = self._ids if model_ids is None else _integers(model_ids, "model_ids")
        eps = self._core.epochs if epochs is None else _integers(epochs, "epochs")
        flat = self.read_pairs(np.repeat(ids, eps.size), np.tile(eps, ids.size))
        out = flat.reshape(ids.size, eps.size, self.parameters)
        if epochs is not None and np.ndim(epochs) == 0:
            out = out[:, 0]
        if model_ids is not None and np.ndim(model_ids) == 0:
            out = out[0]
        return out

    def read_pairs(self, model_ids: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """float32 ``[N, parameters]`` for N (model id, epoch number) pairs, in the given order."""
        core = self._core
        pos = core.positions(np.unique(model_ids), self._ids)
        pos = pos[np.searchsorted(np.unique(model_ids), model_ids)]
        return core.reader.read_pairs(
            core.shard_of[pos], core.row_of[pos], core.epoch_index(epochs)
        )

    def locate(self, model_ids: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, ...]:
        """(shard, row, epoch index) of each pair: what ``store.reader`` needs to read it."""
        pos = self._core.positions(np.unique(model_ids), self._ids)
        pos = pos[np.searchsorted(np.unique(model_ids), model_ids)]
        return self._core.shard_of[pos], self._core.row_of[pos], self._core.epoch_index(epochs)

    def state_dict(self, model_id: int, epoch: int) -> OrderedDict[str, torch.Tensor]:
        """The model's parameters at ``epoch`` as a state dict (layout names and shapes)."""
        flat = self.weights(_scalar(model_id, "model_id"), _scalar(epoch, "epoch"))
        return OrderedDict(
            (s.name, torch.from_numpy(flat[s.offset : s.offset + s.size].reshape(s.shape).copy()))
            for s in self.layout
        )

    def model(self, model_id: int, epoch: int) -> torch.nn.Module:
        """The trained network at ``epoch``, in eval mode, with the model's activation/dropout."""
        from .nets import load_flat_state, modules_of

        model_id, epoch = _scalar(model_id, "model_id"), _scalar(epoch, "epoch")
        row = self._row(model_id)
        flat = self.weights(model_id, epoch)
        if not np.isfinite(flat).all():
            raise ModelZooError(
                f"{self.path}: model {model_id} has no finite weights at epoch {epoch} "
                f"(status {row['status']}, diverged at epoch {row.get('diverged_epoch')})"
            )
        training = self.manifest["spec"]["training"]
        activation = str(row.get("activation", training.get("activation", "tanh")))
        dropout = float(row.get("dropout", training.get("dropout", 0.0)))
        net = modules_of(self.plan, activation, dropout)
        load_flat_state(net, torch.from_numpy(flat), self.plan.layout)  # BatchNorm buffers too
        return net.eval()

    def _row(self, model_id: int) -> pd.Series:
        self._core.positions(np.asarray([model_id], dtype=np.int64), self._ids)
        return self._core.models.iloc[int(np.searchsorted(self._core.model_ids, model_id))]

    # ----------------------------------------------------------------------------- image data
    def data_config(self, model_id: int | None = None, data_dir: str | None = None):
        """The data layer's config the models were trained with (grid dataset keys applied)."""
        from .data import DataConfig

        section = dict(self.manifest["dataset"]["spec"])
        varied = [c for c in self._models.columns if c.startswith("dataset_")]
        if model_id is not None:
            row = self._row(model_id)
            section.update({c.removeprefix("dataset_"): _plain(row[c]) for c in varied})
        else:
            for column in varied:
                values = self._models[column].unique()
                if len(values) > 1:
                    raise ModelZooError(
                        f"{self.path}: the zoo varies dataset.{column[8:]}; pass model_id"
                    )
                section[column.removeprefix("dataset_")] = _plain(values[0])
        return DataConfig.from_section(section, data_dir)

    def data(
        self, split: str = "test", data_dir: str | None = None, model_id: int | None = None
    ) -> ImageData:
        """The preprocessed images of ``split`` (train / validation / test) the models used."""
        from .data import load_training_data

        if split not in SPLIT_NAMES:
            raise ModelZooError(
                f"data: unknown split {split!r}; choose one of: train, validation, test"
            )
        data = getattr(load_training_data(self.data_config(model_id, data_dir)), SPLIT_NAMES[split])
        if data is None:
            raise ModelZooError(
                f"{self.path}: this zoo has no validation split (dataset.train_fraction is 1)"
            )
        return data

    def evaluate(self, model_id: int, epoch: int, data_dir: str | None = None) -> dict[str, Any]:
        """Re-measure a stored model exactly as the zoo's metrics were computed."""
        from .data import load_training_data
        from .evaluation import evaluate_model

        data = load_training_data(self.data_config(model_id, data_dir))
        return evaluate_model(self.model(model_id, epoch), data)

    # ----------------------------------------------------------------------------- splits
    def split(
        self, fractions: Sequence[float] = DEFAULT_SPLITS, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """Model ids of the train / val / test split, restricted to this view, each sorted.

        The one set of model-level splits of a zoo (ZooDataset, train-ae, probe and sample all
        use it, so no model leaks from train into test across modules). Every model the zoo's
        spec plans (ids 0..planned-1, stored or not yet) is shuffled by ``seed`` and cut by
        ``fractions`` (e.g. 0.8, 0.05, 0.15 for the 2021 paper): a model's split never changes
        when the zoo grows or is filtered, and the proportions are exact once it is complete.
        """
        fractions = tuple(float(f) for f in fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ModelZooError(
                f"splits: expected three non-negative fractions summing to 1 "
                f"(train, val, test), got {fractions}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ModelZooError(f"split seed: expected an integer >= 0, got {seed!r}")
        stored = self._core.model_ids
        planned = int(self.manifest.get("counts", {}).get("planned", 0))
        everyone = np.arange(max(planned, int(stored.max()) + 1 if stored.size else 0))
        order = np.random.default_rng(int(seed)).permutation(everyone)
        n_train = round(fractions[0] * order.size)
        n_val = min(round(fractions[1] * order.size), order.size - n_train)
        cuts = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        return {name: np.intersect1d(ids, self._ids) for name, ids in cuts.items()}

    def summary(self) -> dict[str, Any]:
        """What ``modelzoo info`` prints: size, factors, status counts, accuracy per epoch."""
        metrics = self.metrics
        ok = metrics[
            metrics["model_id"].isin(self._models.loc[self._models["status"] == "ok", "model_id"])
        ]
        per_epoch = (
            ok.groupby("epoch")["test_acc"].agg(["mean", "min", "max", "count"]).reset_index()
        )
        files = [
            self.path / fmt.MANIFEST,
            self.path / fmt.MODELS_TABLE,
            self.path / fmt.METRICS_TABLE,
            *self._core.reader.paths,
        ]
        return {
            "name": self.name,
            "path": str(self.path),
            "description": str(self.manifest["spec"].get("description") or ""),
            "source": self.manifest["spec"].get("source"),  # e.g. a sample's run and method
            "models": len(self),
            "planned": int(self.manifest.get("counts", {}).get("planned", len(self))),
            "bytes": int(sum(p.stat().st_size for p in files if p.exists())),
            "shards": len(self._core.reader.paths),
            "dataset": self.dataset_name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "epochs": self.epochs,
            "status": {k: int(v) for k, v in self._models["status"].value_counts().items()},
            "factors": {k: [_plain(v) for v in vs] for k, vs in self.factors().items()},
            "settings": {k: _plain(v) for k, v in self.settings().items()},
            "test_acc_per_epoch": [
                {k: _plain(v) for k, v in r.items()} for r in per_epoch.to_dict("records")
            ],
        }


def _integers(values: Any, what: str) -> np.ndarray:
    """``values`` (an int or a sequence of ints) as a 1-d int64 array; anything that is not an
    integer (1.5, "3", None, True) is an error rather than silently truncated."""
    try:
        array = np.atleast_1d(np.asarray(values))
    except (TypeError, ValueError):
        array = np.asarray([None], dtype=object)
    if array.ndim == 1 and (array.dtype.kind in "iu" or array.size == 0):
        return array.astype(np.int64)
    if array.ndim == 1 and array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    raise ModelZooError(f"{what}: expected an integer or a list of integers, got {values!r}")


def _scalar(value: Any, what: str) -> int:
    if np.ndim(value) != 0:
        raise ModelZooError(f"{what}: expected one integer, got {value!r}")
    return int(_integers(value, what)[0])


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (for JSON and for the data layer's config)."""
    return value.item() if isinstance(value, np.generic) else value
