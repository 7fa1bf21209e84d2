"""An independent oracle for every metric the default engine stores.

The zoos of tests/test_zoo_helpers.py are trained by the vectorised engine (the default). For
(model, epoch) states of each, this file recomputes every stored metric from what a user gets
back, ``zoo.model(id, epoch)`` and ``zoo.data(split)``, with code that shares nothing with
modelzoo/evaluation.py or the engine: a float64 forward pass of the plain ``nn.Module``,
``torch.nn.functional.cross_entropy``, argmax, and scikit-learn's ``f1_score``.

Tolerances (docs/engine.md, "Tolerance and what the tests check"):

* losses: the engine computes per-example losses from float32 logits and sums them in float64.
  A float32 forward pass of these zoos' models deviates from the float64 one by at most 2.1e-6 per
  logit (measured over every state of the three zoos), and a cross-entropy moves by at most twice
  the largest logit change, so |stored - oracle| <= 4.2e-6; we allow LOSS_TOLERANCE = 1e-5. The
  measured differences are <= 2e-8 (float32 rounding errors average out over a split); the
  losses of different splits of one state differ by 1e-3 and more.
* accuracies and F1: exact, except for examples with classes whose float64 logits are within
  TIE_MARGIN = 1e-5 of the largest (five times the float32 deviation): the engine's float32
  argmax may pick any of those. Accuracy must lie in the range those examples allow; per-class F1 must equal (to
  float32 storage, 1e-6) scikit-learn's value for one of the ways of resolving them (enumerated
  when there are at most six; otherwise only the classes that no tied example involves are
  compared, which the test keeps to a minority of states).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from test_zoo_helpers import digits_zoo, grid_zoo, seed_zoo
from torch.nn import functional

from modelzoo import Zoo, open_zoo

LOSS_TOLERANCE = 1e-5
TIE_MARGIN = 1e-5
F1_TOLERANCE = 1e-6  # F1 is stored as float32 (values <= 1: rounding <= 6e-8)
MAX_ENUMERATED = 6
STATES_PER_ZOO = 48
SPLITS = {"train": "train", "val": "validation", "test": "test"}
ZOOS = {"tetris_seed": seed_zoo, "grid_tetris": grid_zoo, "digits_dropout_val": digits_zoo}


@dataclass
class Recomputed:
    """One split of one model-epoch, measured in float64 from the stored float32 weights."""

    loss: float
    first: np.ndarray  # argmax class per example
    near: np.ndarray  # [n, K] bool: classes within TIE_MARGIN of the largest logit
    labels: np.ndarray
    classes: int

    @property
    def tied(self) -> np.ndarray:
        """Examples whose float32 argmax may be another class than ``first``."""
        return self.near.sum(axis=1) > 1

    @property
    def n(self) -> int:
        return len(self.labels)

    def accuracy_range(self) -> tuple[float, float]:
        sure = int(np.sum(~self.tied & (self.first == self.labels)))
        maybe = int(np.sum(self.tied & self.near[np.arange(self.n), self.labels]))
        return sure / self.n, (sure + maybe) / self.n

    def f1_candidates(self) -> tuple[list[np.ndarray], list[int]]:
        """Per-class F1 for each way the tied examples may be predicted, and the classes whose F1
        those candidates pin down (all, unless there are too many tied examples to enumerate)."""
        labels, pinned = list(range(self.classes)), list(range(self.classes))
        tied = np.flatnonzero(self.tied)
        if len(tied) > MAX_ENUMERATED:
            involved = set(np.flatnonzero(self.near[tied].any(axis=0)).tolist())
            pinned = [c for c in pinned if c not in involved]
            tied = tied[:0]
        options = [np.flatnonzero(self.near[i]) for i in tied]
        candidates = []
        for choice in itertools.product(*options):
            predicted = self.first.copy()
            predicted[tied] = choice
            candidates.append(f1_score(self.labels, predicted, average=None, labels=labels,
                                       zero_division=0))  # fmt: skip
        return candidates, pinned


_DATA: dict[tuple, object] = {}


def split_data(zoo: Zoo, split: str, model_id: int):
    """``zoo.data(split)`` for the model, loaded once per zoo unless it varies dataset keys."""
    varies = any(column.startswith("dataset_") for column in zoo.models.columns)
    key = (str(zoo.path), split, model_id if varies else None)
    if key not in _DATA:
        _DATA[key] = zoo.data(split, model_id=model_id)
    return _DATA[key]


def recompute(zoo: Zoo, model_id: int, epoch: int, split: str) -> Recomputed:
    model = zoo.model(model_id, epoch)
    assert not model.training  # eval mode: dropout off, as the stored metrics were measured
    model = copy.deepcopy(model).double()
    data = split_data(zoo, split, model_id)
    with torch.no_grad():
        logits = model(data.images.double())
    largest = logits.max(dim=1, keepdim=True).values
    return Recomputed(
        loss=functional.cross_entropy(logits, data.labels).item(),
        first=logits.argmax(dim=1).numpy(),
        near=(largest - logits < TIE_MARGIN).numpy(),
        labels=data.labels.numpy(),
        classes=zoo.num_classes,
    )


def sampled_states(zoo: Zoo) -> list[tuple[int, int]]:
    """Every (model, epoch) of a small zoo, else a seeded sample that keeps every epoch."""
    states = [(int(m), int(e)) for m in zoo.model_ids for e in zoo.epochs]
    if len(states) <= STATES_PER_ZOO:
        return states
    rng = np.random.default_rng(0)
    picked = rng.choice(len(states), STATES_PER_ZOO - len(zoo.epochs), replace=False)
    first_model = [(int(zoo.model_ids[0]), int(e)) for e in zoo.epochs]
    return sorted(set(first_model) | {states[i] for i in picked})


def check_state(zoo: Zoo, stored, model_id: int, epoch: int) -> bool:
    """Assert every stored metric of one state; True if some F1 classes could not be pinned."""
    where = f"{zoo.name} model {model_id} epoch {epoch}"
    accuracy = {}
    for name, split in SPLITS.items():
        if name == "val" and zoo.manifest["dataset"]["spec"].get("train_fraction", 1.0) == 1.0:
            assert np.isnan(stored["val_loss"]) and np.isnan(stored["val_acc"]), where
            continue
        oracle = recompute(zoo, model_id, epoch, split)
        assert abs(stored[f"{name}_loss"] - oracle.loss) <= LOSS_TOLERANCE, (where, name)
        low, high = oracle.accuracy_range()
        assert low - 1e-12 <= stored[f"{name}_acc"] <= high + 1e-12, (where, name, low, high)
        accuracy[name] = (low, high)
        if name == "test":
            f1 = np.array([stored[f"f1_{c}"] for c in range(zoo.num_classes)])
            candidates, pinned = oracle.f1_candidates()
            assert any(np.abs(f1[pinned] - c[pinned]).max(initial=0) <= F1_TOLERANCE
                       for c in candidates), (where, f1, candidates[:2])  # fmt: skip
            partial = len(pinned) < zoo.num_classes
    gap = stored["train_acc"] - stored["test_acc"]
    assert stored["gap"] == pytest.approx(gap, abs=1e-15), where
    low = accuracy["train"][0] - accuracy["test"][1]
    high = accuracy["train"][1] - accuracy["test"][0]
    assert low - 1e-12 <= stored["gap"] <= high + 1e-12, where
    assert stored["seconds"] >= 0 and (epoch > 0 or stored["seconds"] == 0), where
    return partial


@pytest.fixture(scope="module", params=list(ZOOS))
def zoo(request) -> Zoo:
    return open_zoo(ZOOS[request.param]())


def test_zoos_are_built_by_the_default_engine(zoo: Zoo) -> None:
    assert zoo.manifest["spec"]["execution"]["engine"] == "vectorized"
    assert (zoo.models["status"] == "ok").all()


def test_every_stored_metric_matches_an_independent_recomputation(zoo: Zoo) -> None:
    metrics = zoo.metrics.set_index(["model_id", "epoch"])
    states = sampled_states(zoo)
    partial = [check_state(zoo, metrics.loc[state], *state) for state in states]
    assert sum(partial) <= 0.1 * len(states), "too many states with unenumerable ties"


def test_final_metrics_in_the_models_table_are_the_last_epoch_rows(zoo: Zoo) -> None:
    metrics = zoo.metrics.set_index(["model_id", "epoch"])
    for _, row in zoo.models.iterrows():
        assert row["final_epoch"] == zoo.epochs[-1]
        last = metrics.loc[(row["model_id"], row["final_epoch"])]
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
            assert row[name] == last[name] or (np.isnan(row[name]) and np.isnan(last[name]))
        assert row["gap"] == last["gap"]


def test_the_digits_zoo_has_dropout_and_a_validation_split() -> None:
    """What makes the CNN zoo a test of the val split and of eval-mode dropout."""
    zoo = open_zoo(digits_zoo())
    assert zoo.manifest["dataset"]["spec"]["train_fraction"] < 1
    assert (zoo.models["dropout"] > 0).all()
    assert zoo.metrics["val_loss"].notna().all()
    assert len(zoo.data("validation")) > 0


def test_evaluate_agrees_with_the_oracle(zoo: Zoo) -> None:
    """``Zoo.evaluate`` re-measures with the library's own code: it must agree with the oracle."""
    model_id, epoch = int(zoo.model_ids[-1]), zoo.epochs[-1]
    scores = zoo.evaluate(model_id, epoch)
    for name, split in SPLITS.items():
        if np.isnan(scores[f"{name}_loss"]):
            continue
        oracle = recompute(zoo, model_id, epoch, split)
        assert abs(scores[f"{name}_loss"] - oracle.loss) <= LOSS_TOLERANCE
        low, high = oracle.accuracy_range()
        assert low - 1e-12 <= scores[f"{name}_acc"] <= high + 1e-12
