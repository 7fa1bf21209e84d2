"""Sparse twins: every model of a zoo continued from its last stored checkpoint with variational
dropout (:mod:`.vd`), written as a new zoo with the same model ids.

The twin's spec is the source's own (same grid, seeds and hence model ids) with
``training.epochs = N``, ``store.epochs = 0..N`` and ``source`` = a JSON record of the source zoo
(path, name, spec fingerprint) and the sparsification settings. Epoch 0 is the source's last
checkpoint as stored; epoch e > 0 holds the pruned effective weights (zeros where
``log alpha > 3``) in the source's layout. Training follows the Model Zoos repository's
``train_mnist_sparse_vd.py``: the source's optimizer, lr, weight decay and batch size over the
weights and the ``log sigma^2`` parameters alike, loss = cross-entropy (batch mean) +
``kl_weight(e) * KL`` with ``kl_weight(e) = min(1, 0.01 (e-1)/N)``, no schedule, no augmentation.
Metrics per epoch: the source's metrics, recomputed on the stored weights, plus ``sparsity``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from ..errors import ModelZooError, StoreError
from ..evaluation import SCALAR_METRICS, evaluate_model
from ..train.result import STATUS_DIVERGED, STATUS_FAILED, STATUS_OK, RunResult
from .vd import (
    CLAMP,
    K1,
    K2,
    K3,
    LOG_SIGMA2_INIT,
    THRESHOLD,
    VariationalDropout,
    kl_weight,
    sparsity,
)

METRICS = (*SCALAR_METRICS, "sparsity")
SHARD_BYTES = 256 * 2**20  # twin weights per shard (and held in memory at once)


@dataclasses.dataclass(frozen=True)
class TwinPlan:
    """What a sparsify run will do: the twin's spec, its runs and where each model starts."""

    spec: Any
    runs: list
    start_epochs: dict[int, int]  # model id -> source epoch continued from (-1: none finite)
    epochs: int

    def summary(self) -> dict[str, Any]:
        m = len(self.runs)
        return {"name": self.spec.name, "source": json.loads(self.spec.resolved["source"]),
                "models": m, "epochs": self.epochs, "states_per_model": self.epochs,
                "states": m * self.epochs, "stored_states": m * (self.epochs + 1),
                "start_epochs": {str(k): v for k, v in self.start_epochs.items()}}  # fmt: skip


def plan_twin(zoo: Any, epochs: int, seed: int = 0, name: str | None = None) -> TwinPlan:
    """The twin of ``zoo`` (an open Zoo) with ``epochs`` sparsification epochs."""
    from ..spec import expand, validate

    if int(epochs) < 1:
        raise ModelZooError(f"--epochs: expected a whole number >= 1, got {epochs}")
    raw = json.loads(json.dumps(zoo.manifest["spec"]))
    if "training.epochs" in raw.get("grid", {}):
        raise ModelZooError(f"{zoo.path}: the zoo varies training.epochs; sparsify needs one "
                            "epoch axis (select a sub-zoo with one value)")  # fmt: skip
    settings = {"method": "variational-dropout (Molchanov et al. 2017)", "epochs": int(epochs),
                "seed": int(seed), "threshold_log_alpha": THRESHOLD,
                "log_sigma2_init": LOG_SIGMA2_INIT, "log_alpha_clamp": CLAMP,
                "kl": [K1, K2, K3], "kl_weight": "min(1, 0.01*(epoch-1)/epochs)"}  # fmt: skip
    source = {"zoo": str(Path(zoo.path).resolve()), "name": zoo.manifest["name"],
              "spec_fingerprint": zoo.manifest["spec_fingerprint"], "sparsify": settings}  # fmt: skip
    raw["name"] = name or f"{zoo.manifest['name']}_sparse"
    raw["training"]["epochs"] = int(epochs)
    raw["store"] = {**raw.get("store", {}), "epochs": list(range(int(epochs) + 1))}
    raw["description"] = f"sparse twin of zoo {zoo.manifest['name']} ({epochs} epochs of VD)"
    raw["source"] = json.dumps(source, sort_keys=True)
    spec = validate(raw, f"<sparse twin of {zoo.path}>")
    ids = set(int(i) for i in zoo.model_ids)
    runs = [r for r in expand(spec) if r.model_id in ids]
    if {r.model_id for r in runs} != ids:
        raise ModelZooError(f"{zoo.path}: model ids {sorted(ids - {r.model_id for r in runs})[:5]} "
                            "are not in the expansion of its own spec")  # fmt: skip
    final = dict(zip(zoo.models["model_id"].astype(int), zoo.models["final_epoch"].astype(int)))
    return TwinPlan(spec, runs, {r.model_id: final[r.model_id] for r in runs}, int(epochs))


def sparsify_model(zoo: Any, run: Any, start: int, epochs: int, seed: int, data: Any) -> RunResult:
    """Continue one model from source epoch ``start`` for ``epochs`` VD epochs."""
    from ..nets import SeededDropout, load_flat_state, modules_of
    from ..optim import make_optimizer
    from ..seeding import derive_seed, dropout_keys, epoch_order, generator

    classes = len(data.train.classes)
    if start < 0:
        return RunResult.failed(run.model_id, run.key, epochs + 1, zoo.parameters, classes,
                                "the source model has no finite stored state")  # fmt: skip
    layout, plan = zoo.plan.layout, zoo.plan
    activation, dropout = run.training["activation"], float(run.training["dropout"])
    weights = np.full((epochs + 1, zoo.parameters), np.nan, dtype=np.float32)
    metrics = {name: np.full(epochs + 1, np.nan) for name in METRICS}
    f1 = np.full((epochs + 1, classes), np.nan, dtype=np.float32)

    def record(row: int, flat: torch.Tensor, seconds: float) -> None:
        net = load_flat_state(modules_of(plan, activation, dropout), flat, layout).eval()
        scores = evaluate_model(net, data)  # the stored vector, measured as zoo.evaluate would
        f1[row] = scores.pop("f1")
        for key, value in scores.items():
            metrics[key][row] = value
        metrics["seconds"][row], metrics["sparsity"][row] = seconds, sparsity(net)
        weights[row] = flat.numpy()

    run_seed = derive_seed(run.seed, f"sparsify:{seed}")
    record(0, torch.from_numpy(zoo.weights(run.model_id, start).copy()), 0.0)
    wrapper = VariationalDropout(zoo.model(run.model_id, start), generator(run_seed, "noise"))
    optimizer = make_optimizer(wrapper.parameters(), run.training)
    key = dropout_keys(torch.tensor([derive_seed(run_seed, "dropout")]))
    dropouts = [m for m in wrapper.modules() if isinstance(m, SeededDropout)]
    for module in dropouts:
        module.key = key
    images, labels = data.train.images, data.train.labels
    n, batch, step = images.shape[0], int(run.training["batch_size"]), 0
    status, error, diverged = STATUS_OK, "", -1
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        wrapper.train()
        weight = kl_weight(epoch, epochs)
        order = epoch_order(run_seed, epoch, n)
        for begin in range(0, n, batch):
            index = order[begin : begin + batch]
            for module in dropouts:
                module.step = step
            loss = functional.cross_entropy(wrapper(images[index]), labels[index])
            loss = loss + weight * wrapper.kl()
            if not torch.isfinite(loss):
                status, error = STATUS_DIVERGED, f"non-finite loss in epoch {epoch} (step {step})"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if status != STATUS_OK:
            diverged = epoch
            break
        wrapper.eval()
        state = wrapper.pruned_state()
        flat = torch.cat([state[s.name].reshape(-1).to(torch.float32) for s in layout])
        record(epoch, flat, time.perf_counter() - started)
    return RunResult(run.model_id, run.key, weights, metrics, f1, status, error, diverged)


def _check_resumable(work: Path, spec: Any) -> None:
    """A left-over ``<out>.partial`` is resumed only if it is this very twin (source, settings),
    never another command's work folder (an interrupted train-ae's checkpoints)."""
    from ..outdir import COMMAND_FILE

    if (work / COMMAND_FILE).is_file():
        raise StoreError(f"{work}: left by another modelzoo command (train-ae, probe, fidelity or "
                         "sample) on the same name; choose another --out or remove it")  # fmt: skip
    manifest = work / "zoo.json"
    if not manifest.is_file():
        return
    try:
        recorded = json.loads(manifest.read_text())["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if (
        recorded is None
        or recorded.get("source") != spec.resolved["source"]
        or (recorded.get("training") != spec.resolved["training"])
    ):
        raise StoreError(f"{work}: left by an interrupted sparsify with other settings or "
                         "another source; delete it or rerun that command to resume it")  # fmt: skip


def sparsify(zoo_path: str | Path, out: str | Path, epochs: int = 25, seed: int = 0,
             name: str | None = None, progress: bool = True) -> Path:  # fmt: skip
    """Write the sparse twin of the zoo at ``zoo_path`` to the new folder ``out``."""
    from tqdm import tqdm

    from ..data import load_training_data
    from ..store.writer import ZooWriter
    from ..zoo import open_zoo

    if int(epochs) < 1:
        raise ModelZooError(f"--epochs: expected a whole number >= 1, got {epochs}")
    zoo = open_zoo(zoo_path)
    out = Path(out)
    if out.exists():
        raise StoreError(f"{out}: already exists; choose a new --out folder")
    if out.resolve().is_relative_to(Path(zoo.path).resolve()):
        raise StoreError(f"{out}: inside the source zoo {zoo.path}; choose a folder outside it")
    plan = plan_twin(zoo, epochs, seed, name or out.name)
    # one shard per chunk of models, sealed as it finishes: a large-model zoo never holds more
    # than ~256 MB of twin weights, and an interrupted run resumes from <out>.partial
    per_model = (plan.epochs + 1) * zoo.parameters * 4
    chunk = max(1, min(len(plan.runs), SHARD_BYTES // max(1, per_model)))
    work = out.with_name(out.name + ".partial")
    _check_resumable(work, plan.spec)
    with ZooWriter(work, plan.spec, plan.runs, zoo.manifest["dataset"], zoo.manifest["layout"],
                   metric_names=METRICS) as writer:
        done = writer.done_ids()
        todo = [run for run in plan.runs if run.model_id not in done]
        bar = tqdm(total=len(plan.runs), initial=len(done), desc="sparsify", unit="model",
                   disable=not progress)  # fmt: skip
        for begin in range(0, len(todo), chunk):
            results = []
            for run in todo[begin : begin + chunk]:
                data = load_training_data(zoo.data_config(run.model_id))
                results.append(sparsify_model(zoo, run, plan.start_epochs[run.model_id],
                                              plan.epochs, seed, data))  # fmt: skip
                bar.update(1)
            writer.add(results)
        bar.close()
    work.rename(out)
    return out


__all__ = ["METRICS", "STATUS_FAILED", "TwinPlan", "plan_twin", "sparsify", "sparsify_model"]
