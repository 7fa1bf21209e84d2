"""The weights an autoencoder trains on: model-level splits, the epoch window, normalisation.

Small zoos' weights fit in memory (tetris_seed: 53,200 train states x 100 values = 21 MB), so each
split is read once, in chunks, into one float32 tensor and batches are row gathers from it. The
splits are the zoo's own (``zoo.split``: the ones ZooDataset, probe and sample use), so no model
leaks across modules. A sample is one recorded (model, epoch) state: a finite test accuracy at
that epoch and finite weights, as ZooDataset counts them.

Layer statistics (mean, std per layer: weight and bias together) come from the train split's
states (``modelzoo.dataset.layer_statistics``, the ones ZooDataset's ``normalize=True`` uses) and
are what ``normalization.json`` records; with ``data.normalize`` the autoencoder sees every layer
standardised (std floored at 1e-4, the 2022 paper's floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..dataset import layer_statistics
from ..errors import ModelZooError
from ..tokens import LayerNormalizer, layer_groups
from .losses import STD_FLOOR

SPLITS = ("train", "val", "test")


def recorded_pairs(zoo: Any, model_ids: np.ndarray, epochs: list[int]) -> pd.DataFrame:
    """(model_id, epoch) of every recorded state of ``model_ids`` in ``epochs``, sorted."""
    metrics = zoo.metrics
    keep = (
        metrics["model_id"].isin(model_ids)
        & metrics["epoch"].isin(epochs)
        & np.isfinite(metrics["test_acc"].to_numpy(dtype=np.float64))
    )
    pairs = metrics.loc[keep, ["model_id", "epoch"]]
    return pairs.sort_values(["model_id", "epoch"]).reset_index(drop=True)


def epoch_window(zoo: Any, epochs: Any) -> list[int]:
    """The configured epochs (null: all stored), checked against the zoo."""
    if epochs is None:
        return list(zoo.epochs)
    wanted = sorted({int(e) for e in ([epochs] if isinstance(epochs, int) else epochs)})
    missing = [e for e in wanted if e not in set(zoo.epochs)]
    if missing:
        raise ModelZooError(
            f"data.epochs: epoch(s) {missing} are not stored in {zoo.path} "
            f"(stored: {zoo.epochs[0]}..{zoo.epochs[-1]}); set data.epochs=null "
            "for every stored epoch"
        )
    return wanted


@dataclass
class Normalization:
    """Per-layer raw statistics and the affine map (shift, scale per position) into the AE space."""

    stats: dict[str, tuple[float, float]]  # layer -> (mean, std) over the train split
    shift: np.ndarray  # float32 [P]
    scale: np.ndarray  # float32 [P]
    normalized: bool

    @classmethod
    def of(cls, layout: Any, stats: dict[str, tuple[float, float]], normalize: bool):
        floored = {name: (m, max(s, STD_FLOOR)) for name, (m, s) in stats.items()}
        size = sum(slot.size for slot in layout)
        if normalize:
            normalizer = LayerNormalizer(layout, floored)
            return cls(dict(stats), normalizer.mean, normalizer.std, True)
        return cls(dict(stats), np.zeros(size, np.float32), np.ones(size, np.float32), False)

    def apply(self, flat: np.ndarray) -> np.ndarray:
        return ((flat - self.shift) / self.scale).astype(np.float32, copy=False)

    def invert(self, flat):
        if isinstance(flat, np.ndarray):
            return flat * self.scale + self.shift
        return flat * torch.as_tensor(self.scale, device=flat.device) + torch.as_tensor(
            self.shift, device=flat.device
        )

    def space_stats(self, layout: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-position mean and std of each layer *in the AE's space* (for LWLN)."""
        mean, std = np.empty_like(self.shift), np.empty_like(self.scale)
        for name, slots in layer_groups(layout):
            m, s = self.stats[name]
            for slot in slots:
                span = slot.span
                mean[span] = (m - self.shift[span]) / self.scale[span]
                std[span] = s / self.scale[span]
        return mean, std

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": "per_layer",
            "floor": STD_FLOOR,
            "applied": self.normalized,
            "layers": {n: {"mean": m, "std": s} for n, (m, s) in self.stats.items()},
        }


@dataclass
class Split:
    """One split's recorded states in memory, in the AE's space."""

    model_ids: np.ndarray  # int64 [S]
    epochs: np.ndarray  # int64 [S]
    flat: torch.Tensor  # float32 [S, P]
    activations: np.ndarray  # object [S]

    def __len__(self) -> int:
        return int(self.model_ids.size)


def read_states(zoo: Any, pairs: pd.DataFrame, chunk: int = 8192) -> np.ndarray:
    """float32 ``[len(pairs), P]`` raw weights, read in chunks."""
    out = np.empty((len(pairs), zoo.parameters), dtype=np.float32)
    ids, eps = pairs["model_id"].to_numpy(), pairs["epoch"].to_numpy()
    for start in range(0, len(pairs), chunk):
        stop = start + chunk
        out[start:stop] = zoo.read_pairs(ids[start:stop], eps[start:stop])
    return out


def model_splits(zoo: Any, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Model ids per split among the models training uses (``data.status``: the ok ones, or all)."""
    kept = zoo.select(status="ok") if data["status"] == "ok" else zoo
    parts = kept.split(data["splits"], data["split_seed"])
    if parts["train"].size == 0:
        raise ModelZooError(f"{zoo.path}: the train split holds no models (of {len(kept)} kept)")
    return parts


def load_splits(zoo: Any, data: dict[str, Any]) -> tuple[dict[str, Split], Normalization]:
    """The three splits of the configured epoch window, and the normalisation they use."""
    from .behaviour import model_activations

    epochs = epoch_window(zoo, data["epochs"])
    parts = model_splits(zoo, data)
    stats = layer_statistics(zoo, parts["train"], epochs)
    norm = Normalization.of(zoo.layout, stats, data["normalize"])
    splits = {}
    for name in SPLITS:
        pairs = recorded_pairs(zoo, parts[name], epochs)
        raw = read_states(zoo, pairs)
        finite = np.isfinite(raw).all(axis=1)
        pairs, raw = pairs[finite].reset_index(drop=True), raw[finite]
        ids = pairs["model_id"].to_numpy(dtype=np.int64)
        splits[name] = Split(
            ids,
            pairs["epoch"].to_numpy(dtype=np.int64),
            torch.from_numpy(norm.apply(raw)),
            model_activations(zoo, ids),
        )
    return splits, norm
