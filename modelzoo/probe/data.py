"""Which model states a probe sees (splits, epoch protocol) and which properties it predicts.

Samples are (model, stored epoch) pairs of the zoo's one set of model-level splits
(``zoo.split``; every epoch of a model in one split, as ZooDataset and train-ae use them). The
epoch protocol is seed 001's (``all``: every stored epoch) or the metanetwork papers' (``last``:
each model's final recorded state), or a window such as ``21:25``.

Targets are every per-epoch metric (epoch, losses, accuracies, gap, per-class F1) and every
generating factor of the models table: numbers are continuous targets (ridge), text columns are
categorical ones (logistic regression). Constant targets are skipped with a note; the seed is
an identifier, not a property, and is a target only when asked for (``--targets seed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelZooError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)  # seed 001: 70 / 15 / 15 % of the models
NOT_TARGETS = {"model_id", "run_key", "status", "error", "diverged_epoch", "shard", "row",
               "final_epoch", "seconds"}  # fmt: skip
IDENTIFIERS = {"seed"}  # an id, not a property of the model: probed only when asked for


@dataclass
class Samples:
    """The probe's rows: ids, epochs, split name, flat weights and the target table."""

    table: pd.DataFrame  # model_id, epoch, split, then one column per target candidate
    weights: np.ndarray  # [rows, P] float32

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.table["split"].to_numpy() == split)


def parse_epochs(text: str | None, stored: list[int]) -> str | list[int]:
    """``all``, ``last``, ``A:B`` (inclusive window) or ``e1,e2,...`` -> "all", "last" or epochs."""
    text = (text or "all").strip()
    if text in ("all", "last"):
        return text
    try:
        if ":" in text:
            low, high = (int(part) for part in text.split(":"))
            chosen = [e for e in stored if low <= e <= high]
        else:
            chosen = sorted({int(part) for part in text.split(",")})
    except ValueError:
        chosen = None
    if not chosen or any(e not in stored for e in chosen):
        raise ModelZooError(f"--epochs: expected all, last, A:B or a list of stored epochs "
                            f"({stored[0]}..{stored[-1]}), got {text!r}")  # fmt: skip
    return chosen


def load_samples(zoo, epochs: str | list[int] = "all", fractions=DEFAULT_FRACTIONS,
                 split_seed: int = 0, status: str = "ok") -> Samples:  # fmt: skip
    """Every recorded state of ``zoo``'s models with ``status`` in the epoch protocol, with split."""
    models = zoo.models
    models = models[models["status"] == status] if status else models
    metrics = zoo.metrics[zoo.metrics["model_id"].isin(models["model_id"])]
    metrics = metrics[np.isfinite(metrics["test_acc"].to_numpy(dtype=float))]
    if epochs == "last":
        metrics = metrics[metrics["epoch"] == metrics.groupby("model_id")["epoch"].transform("max")]
    elif epochs != "all":
        metrics = metrics[metrics["epoch"].isin(list(epochs))]
    split_of = {}
    for name, ids in zoo.split(fractions, split_seed).items():
        split_of.update({int(i): name for i in ids})
    factors = models.drop(
        columns=[c for c in models.columns if c in metrics.columns and c != "model_id"]
    )
    table = metrics.merge(factors, on="model_id", how="left")
    table = table.sort_values(["model_id", "epoch"]).reset_index(drop=True)
    table.insert(2, "split", table["model_id"].map(split_of))
    weights = zoo.read_pairs(table["model_id"].to_numpy(), table["epoch"].to_numpy())
    finite = np.isfinite(weights).all(axis=1)
    if not finite.all():
        table, weights = table[finite].reset_index(drop=True), weights[finite]
    if len(table) == 0:
        raise ModelZooError(f"{zoo.path}: no recorded model states with status {status!r}")
    return Samples(table, np.ascontiguousarray(weights, dtype=np.float32))


def candidate_targets(table: pd.DataFrame) -> dict[str, str]:
    """Every column that can be a target -> "continuous" or "categorical"."""
    kinds = {}
    for column in table.columns:
        if column in NOT_TARGETS or column == "split":
            continue
        numeric = pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(
            table[column])  # fmt: skip
        kinds[column] = "continuous" if numeric else "categorical"
    return kinds


def choose_targets(
    table: pd.DataFrame, names: list[str] | None
) -> tuple[dict[str, str], list[str]]:
    """The requested targets (default: all) with their kinds, and notes on the skipped ones."""
    kinds = candidate_targets(table)
    if names:
        wanted = []
        for name in names:
            expanded = [c for c in kinds if c.startswith("f1_")] if name == "f1" else [name]
            for column in expanded:
                if column not in kinds:
                    raise ModelZooError(f"targets: unknown target {name!r}; valid: f1, "
                                        f"{', '.join(kinds)}")  # fmt: skip
                wanted.append(column)
    else:
        wanted = [c for c in kinds if c not in IDENTIFIERS]
    chosen, notes = {}, []
    for column in dict.fromkeys(wanted):
        values = table[column].dropna()
        if values.nunique() < 2:
            shown = values.iloc[0] if len(values) else "no recorded values"
            notes.append(f"skipped target {column}: constant ({shown})")
            continue
        chosen[column] = kinds[column]
    return chosen, notes
