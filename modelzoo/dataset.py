"""PyTorch datasets of zoo weights: model-level splits, epoch windows, targets, tokens, augments.

A sample is one model at one stored epoch. Splits are by *model* (every epoch of a model lands in
the same split) and are drawn over every model of the opened zoo, not of a filtered view, so a
model's split never depends on a filter. Weights flow: read (or cached) -> layer-wise normalised
(optional) -> augmented (optional, per sample, seeded) -> flat vector or tokens.

Layer-wise normalisation statistics are per *layer* (module: weight and bias together, as the 2022
paper's LWLN), over the train split's models and the dataset's epoch window. They are computed
once and kept in ``normalization.json`` beside the zoo (keyed by what they were computed from),
which is written atomically and is not one of the zoo's checksummed files. A published zoo is
read-only: its statistics go to ``$MODELZOO_CACHE/zoos/<fingerprint>/`` instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .augment import Augmentation, paper_augmentations, sample_rng
from .errors import ModelZooError
from .store import format as fmt
from .store.published import cache_file
from .store.reader import STATUSES
from .tokens import LayerNormalizer, WeightStructure, layer_groups
from .zoo import DEFAULT_SPLITS, Zoo

SPLITS = ("train", "val", "test")
REPRESENTATIONS = ("flat", "tokens")
CACHE_LIMIT = 512 << 20  # cache="auto" keeps a dataset's weights in memory up to this size
NORMALIZATION_FORMAT = "modelzoo-normalization/1"


def layer_statistics(
    zoo: Zoo, model_ids: np.ndarray, epochs: Sequence[int], chunk: int = 4096
) -> dict[str, tuple[float, float]]:
    """Mean and std of every layer's values over the given models x epochs (finite states only)."""
    pairs = _recorded_pairs(zoo, model_ids, epochs)
    total = np.zeros(zoo.parameters)
    squares = np.zeros(zoo.parameters)
    count = 0
    for start in range(0, len(pairs), chunk):
        part = pairs.iloc[start : start + chunk]
        block = zoo.read_pairs(part["model_id"].to_numpy(), part["epoch"].to_numpy()).astype(
            np.float64
        )
        block = block[np.isfinite(block).all(axis=1)]
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
        count += block.shape[0]
    if count == 0:
        raise ModelZooError(
            f"{zoo.path}: no finite model states to compute normalisation statistics from"
        )
    stats = {}
    for name, slots in layer_groups(zoo.layout):
        positions = np.concatenate([np.arange(s.offset, s.offset + s.size) for s in slots])
        n = count * positions.size
        mean = total[positions].sum() / n
        var = max(squares[positions].sum() / n - mean**2, 0.0)
        stats[name] = (float(mean), float(np.sqrt(var)))
    return stats


def stored_statistics(
    zoo: Zoo, model_ids: np.ndarray, epochs: Sequence[int], describe: dict | None = None
) -> dict[str, tuple[float, float]]:
    """:func:`layer_statistics`, read from ``normalization.json`` when computed before (else
    computed and added to it). A zoo folder that cannot be written only loses the caching."""
    ids = np.sort(np.asarray(model_ids, dtype=np.int64))
    ident = {"scheme": "per_layer", "epochs": [int(e) for e in epochs], "models": ids.tolist()}
    key = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]
    path = cache_file(zoo.path, zoo.manifest, fmt.NORMALIZATION_FILE)
    document: dict[str, Any] = {"format": NORMALIZATION_FORMAT, "entries": {}}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict) and loaded.get("format") == NORMALIZATION_FORMAT:
            document = loaded
        entry = document["entries"][key]
        return {name: (float(v["mean"]), float(v["std"])) for name, v in entry["layers"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent, damaged or not computed for this configuration: compute it
    stats = layer_statistics(zoo, ids, epochs)
    document.setdefault("entries", {})[key] = {
        "scheme": "per_layer",
        "epochs": ident["epochs"],
        "models": int(ids.size),
        "description": describe or {},
        "layers": {name: {"mean": m, "std": s} for name, (m, s) in stats.items()},
    }
    try:
        _write_json_atomically(path, document)
    except OSError as error:
        warnings.warn(f"{path}: could not store normalisation statistics ({error})", stacklevel=3)
    return stats


def _write_json_atomically(path: Path, document: dict) -> None:
    """Like ``format.atomic_write_json`` but under a temporary name of its own, so readers in
    several threads or processes that store statistics at once never write into one file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=fmt.TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write((json.dumps(document, indent=2) + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _epoch_window(epochs: int | Iterable[int]) -> list[int]:
    """An epoch number or numbers as a sorted list without repeats."""
    values = [epochs] if isinstance(epochs, int | np.integer) else list(epochs)
    try:
        numbers = [int(e) for e in values]
        exact = all(n == e and not isinstance(e, bool | str) for n, e in zip(numbers, values))
    except (TypeError, ValueError):
        exact = False
    if not exact:
        raise ModelZooError(f"ZooDataset: epochs: expected epoch numbers, got {epochs!r}")
    return sorted(set(numbers))


def _recorded_pairs(zoo: Zoo, model_ids: Iterable[int], epochs: Sequence[int]) -> pd.DataFrame:
    """(model_id, epoch) pairs whose state was recorded (finite test accuracy), sorted."""
    metrics = zoo.metrics
    keep = (
        metrics["model_id"].isin(np.asarray(list(model_ids)))
        & metrics["epoch"].isin(list(epochs))
        & np.isfinite(metrics["test_acc"].to_numpy(dtype=np.float64))
    )
    return metrics[keep].sort_values(["model_id", "epoch"]).reset_index(drop=True)


class ZooDataset(Dataset):
    """Model states of a zoo view as a map-style PyTorch dataset.

    Parameters: ``split`` train / val / test / all; ``splits`` fractions (default 70/15/15) and
    ``split_seed``; ``epochs`` the epoch window (numbers, e.g. ``range(21, 26)``; default all);
    ``status`` kept statuses ("ok", a list, or None for all); ``targets`` property names (any
    metric at the sample's epoch such as test_acc / gap / f1 (all classes) / f1_3, "epoch", or any
    models-table column such as lr or activation; text columns become category indices, see
    ``categories``); ``representation`` "flat" or "tokens"; ``normalize`` layer-wise; ``augment``
    a callable ``(flat, rng) -> flat`` or "paper"; ``views`` 2 for contrastive pairs; ``seed``
    and :meth:`set_epoch` decide the augmentation draws; ``cache`` True / False / "auto".
    """

    def __init__(
        self,
        zoo: Zoo,
        split: str = "train",
        *,
        splits: Sequence[float] = DEFAULT_SPLITS,
        split_seed: int = 0,
        epochs: Iterable[int] | None = None,
        status: str | Sequence[str] | None = "ok",
        targets: Sequence[str] = (),
        representation: str = "flat",
        normalize: bool = False,
        augment: Augmentation | str | None = None,
        views: int = 1,
        seed: int = 0,
        cache: bool | str = "auto",
    ) -> None:
        if split not in (*SPLITS, "all"):
            raise ModelZooError(
                f"ZooDataset: unknown split {split!r}; choose one of: train, val, test, all"
            )
        if representation not in REPRESENTATIONS:
            raise ModelZooError(
                f"ZooDataset: unknown representation {representation!r}; choose one of: "
                f"{', '.join(REPRESENTATIONS)}"
            )
        if views < 1:
            raise ModelZooError(f"ZooDataset: views must be 1 or more, got {views}")
        self.zoo, self.split, self.representation = zoo, split, representation
        self.views, self.seed = int(views), int(seed)
        # shared memory, so set_epoch reaches DataLoader workers that persist between epochs
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.epochs = zoo.epochs if epochs is None else _epoch_window(epochs)
        zoo._core.epoch_index(np.asarray(self.epochs, dtype=np.int64))
        statuses = None if status is None else [status] if isinstance(status, str) else list(status)
        if statuses is not None and not set(statuses) <= set(STATUSES):
            raise ModelZooError(
                f"ZooDataset: unknown status {sorted(set(map(str, statuses)) - set(STATUSES))}; "
                f"choose from: {', '.join(STATUSES)} (or None for all)"
            )
        kept = zoo if statuses is None else zoo.select(status=statuses)
        parts = kept.split(splits, split_seed)
        ids = np.sort(np.concatenate(list(parts.values()))) if split == "all" else parts[split]
        self.samples = _recorded_pairs(zoo, ids, self.epochs)[["model_id", "epoch"]]
        self.model_ids = np.unique(self.samples["model_id"].to_numpy())
        self._where = zoo.locate(
            self.samples["model_id"].to_numpy(), self.samples["epoch"].to_numpy()
        )
        structure = WeightStructure.of(zoo)
        self.structure = structure if representation == "tokens" else None
        self.augment = paper_augmentations(structure) if augment == "paper" else augment
        self.normalizer = None
        if normalize:
            describe = {"splits": list(splits), "split_seed": split_seed, "status": statuses}
            stats = stored_statistics(zoo, parts["train"], self.epochs, describe)
            self.normalizer = LayerNormalizer(zoo.layout, stats)
        self.categories: dict[str, list] = {}
        self._targets = {name: self._target(name) for name in targets}
        size = len(self.samples) * zoo.parameters * 4
        self._cache = (
            self._read(np.arange(len(self.samples)))
            if cache is True or (cache == "auto" and size <= CACHE_LIMIT)
            else None
        )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def epoch(self) -> int:
        """The training epoch set by :meth:`set_epoch` (part of every augmentation's seed)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Call once per training epoch so augmentations differ between epochs (reproducibly);
        DataLoader workers see it too, persistent ones included."""
        self._epoch[0] = int(epoch)

    # ----------------------------------------------------------------------------- targets
    def _target(self, name: str) -> torch.Tensor:
        metrics = self.zoo.metrics.set_index(["model_id", "epoch"])
        key = pd.MultiIndex.from_frame(self.samples)
        if name == "epoch":
            values: Any = self.samples["epoch"].to_numpy()
        elif name == "f1":
            columns = sorted(
                (c for c in metrics.columns if c.startswith("f1_")), key=lambda c: int(c[3:])
            )
            values = metrics.loc[key, columns].to_numpy()
        elif name in metrics.columns:
            values = metrics.loc[key, name].to_numpy()
        elif name in self.zoo.models.columns:
            models = self.zoo._core.models.set_index("model_id")[name]
            values = models.loc[self.samples["model_id"]].to_numpy()
            if not pd.api.types.is_numeric_dtype(models) or pd.api.types.is_bool_dtype(models):
                self.categories[name] = sorted(models.astype(str).unique().tolist())
                codes = pd.Index(self.categories[name]).get_indexer(pd.Series(values).astype(str))
                return torch.as_tensor(codes, dtype=torch.int64)
        else:
            known = ["epoch", "f1", *metrics.columns, *self.zoo.models.columns]
            raise ModelZooError(
                f"ZooDataset: unknown target {name!r}; choose one of: {', '.join(known)}"
            )
        return torch.as_tensor(np.asarray(values, dtype=np.float32))

    # ----------------------------------------------------------------------------- samples
    def _read(self, index: np.ndarray) -> np.ndarray:
        shards, rows, epochs = (part[index] for part in self._where)
        flat = self.zoo._core.reader.read_pairs(shards, rows, epochs)
        return self.normalizer.apply(flat) if self.normalizer is not None else flat

    def weights(self, index: int | Sequence[int]) -> np.ndarray:
        """The (normalised, unaugmented) flat weights of samples ``index``."""
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        return self._cache[index] if self._cache is not None else self._read(index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A batch in one vectorised read (DataLoader calls this with each batch's indices)."""
        index = np.asarray(indices, dtype=np.int64)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} samples")
        index = index % max(len(self), 1)
        flat = self.weights(index)
        if self.augment is not None:
            stacked = np.stack(
                [
                    np.stack(
                        [
                            self.augment(flat[k].copy(), sample_rng(self.seed, self.epoch, i, v))
                            for v in range(self.views)
                        ]
                    )
                    for k, i in enumerate(index)
                ]
            )
        else:
            stacked = (
                np.repeat(flat[:, None], self.views, axis=1) if self.views > 1 else flat[:, None]
            )
        if self.structure is not None:
            stacked = self.structure.tokenize(stacked)
        values = torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32))
        if self.views == 1:
            values = values[:, 0]
        model_ids = self.samples["model_id"].to_numpy()[index]
        epochs = self.samples["epoch"].to_numpy()[index]
        samples = []
        for k, i in enumerate(index.tolist()):
            sample = {
                "model_id": int(model_ids[k]),
                "epoch": int(epochs[k]),
                "targets": {name: t[i] for name, t in self._targets.items()},
            }
            if self.structure is None:
                sample["weights"] = values[k]
            else:
                sample.update(
                    tokens=values[k], mask=self.token_mask, positions=self.token_positions
                )
            samples.append(sample)
        return samples

    # ----------------------------------------------------------------------------- inverses
    @property
    def token_mask(self) -> torch.Tensor:
        return torch.from_numpy(self._structure().token_mask)

    @property
    def token_positions(self) -> torch.Tensor:
        return torch.from_numpy(self._structure().token_positions)

    def _structure(self) -> WeightStructure:
        return self.structure if self.structure is not None else WeightStructure.of(self.zoo)

    def detokenize(self, tokens: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Tokens ``[..., tokens, length]`` back to flat vectors ``[..., P]``."""
        if isinstance(tokens, torch.Tensor):
            out = torch.empty(
                (*tokens.shape[:-2], self.zoo.parameters), dtype=tokens.dtype, device=tokens.device
            )
            mask = torch.from_numpy(self._structure().token_mask).to(tokens.device)
            out[
                ..., torch.from_numpy(self._structure().token_index[self._structure().token_mask])
            ] = tokens[..., mask]
            return out
        return self._structure().detokenize(tokens)

    def denormalize(self, flat: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Undo the layer-wise normalisation (identity when ``normalize=False``)."""
        return flat if self.normalizer is None else self.normalizer.invert(flat)

    def __repr__(self) -> str:
        return (
            f"<ZooDataset {self.zoo.name!r} {self.split}: {len(self)} samples of "
            f"{self.model_ids.size} models, epochs {self.epochs[0]}..{self.epochs[-1]}, "
            f"{self.representation}{', normalised' if self.normalizer else ''}"
            f"{', augmented' if self.augment else ''}, {self.views} view(s)>"
        )
