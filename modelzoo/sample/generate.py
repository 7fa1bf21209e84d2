"""From a train-ae run to a zoo of new networks: anchors -> sampler -> decode -> evaluate at epoch
0 -> (fine-tune) -> a zoo in the store format that info, verify, open_zoo and probe read.

The generated zoo's spec is the source zoo's own (same dataset, architecture and training
settings, grid dropped) with ``seeds.values`` = the sample's seeds, ``store.epochs`` = 0..F for F
fine-tuning epochs, and ``source`` = a JSON record of the run, method and settings (so the
manifest names them). Epoch 0 is measured by the project's engine started from the decoded
weights (``initial=``) with zero epochs to train; fine-tuning is the same call with F epochs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelZooError

# generated models' seeds (they set the data order when fine-tuning): base + 100_000 * seed + i
SEED_BASE = 1_000_000


@dataclasses.dataclass(frozen=True)
class Anchors:
    """The train-split embeddings sampled around, with their models' test accuracy."""

    model_ids: np.ndarray
    epochs: np.ndarray
    z: np.ndarray  # [A, L]; sequential autoencoders: [A, tokens * L] (see token_space)
    accuracy: np.ndarray  # [A]


def source_zoo(rep: Any, zoo: Any = None) -> Any:
    """The zoo the run was trained on (``zoo``: a Zoo or folder when it has moved)."""
    from ..zoo import open_zoo

    record = rep.config["zoo"]
    if zoo is None:
        zoo = record["path"]
    if not hasattr(zoo, "weights"):
        if not Path(zoo).is_dir():
            raise ModelZooError(f"{rep.run_dir}: its zoo {zoo} is not a folder; pass --zoo PATH")
        zoo = open_zoo(zoo)
    if zoo.manifest.get("spec_fingerprint") != record.get("spec_fingerprint"):
        raise ModelZooError(f"{zoo.path}: not the zoo run {rep.run_dir} was trained on "
                            "(spec fingerprints differ)")  # fmt: skip
    return zoo


def token_space(rep: Any) -> bool:
    """Sequential (SANE) autoencoders decode one latent per token, not one per model: for them
    the samplers work on the flattened token latents ``[tokens * L]``, which is what the 2025
    paper's PCA + KDE samples (seed 004 §4: anchors' latent representations, PCA to 32, KDE,
    inverse projection, decoder)."""
    return rep.config["model"]["name"] == "sequential"


def embed(rep: Any, weights: np.ndarray) -> np.ndarray:
    """Raw flat weights ``[N, P]`` -> the space the samplers draw in, ``[N, D]``."""
    if token_space(rep):
        z = rep.encode(weights, per_token=True)
        return z.reshape(len(z), -1)
    return rep.encode(weights)


def decode(rep: Any, z: np.ndarray) -> np.ndarray:
    """Points of the sampling space ``[N, D]`` -> raw flat weights ``[N, P]``."""
    z = np.asarray(z, dtype=np.float32)
    return rep.decode(z.reshape(len(z), -1, rep.latent) if token_space(rep) else z)


def select_anchors(rep: Any, zoo: Any, epochs: list[int] | None = None,
                   min_accuracy: float | None = None) -> Anchors:  # fmt: skip
    """Train-split embeddings at ``epochs`` (default: the run's last trained epoch) whose model
    reached at least ``min_accuracy`` test accuracy at that epoch."""
    frame = rep.embeddings
    frame = frame[frame["split"] == "train"]
    window = list(epochs) if epochs else [max(rep.config["zoo"]["epochs"])]
    missing = sorted(set(window) - set(frame["epoch"].unique().tolist()))
    if missing:
        have = sorted(frame["epoch"].unique().tolist())
        raise ModelZooError(f"--anchor-epochs: epoch(s) {missing} have no train-split state in the "
                            f"run's embeddings; " + (f"choose from {have}" if have else "the run's "
                            "train split is empty"))  # fmt: skip
    frame = frame[frame["epoch"].isin(window)]
    metrics = zoo.metrics[["model_id", "epoch", "test_acc"]]
    frame = frame.merge(metrics, on=["model_id", "epoch"], how="left")
    frame = frame[np.isfinite(frame["test_acc"].to_numpy(dtype=float))]
    if min_accuracy is not None:
        frame = frame[frame["test_acc"] >= float(min_accuracy)]
    columns = [c for c in frame.columns if c.startswith("z_")]
    columns.sort(key=lambda c: int(c[2:]))
    if len(frame) < 2:
        condition = "a finite test_acc" if min_accuracy is None else f"test_acc >= {min_accuracy}"
        raise ModelZooError(f"anchors: {len(frame)} train-split states at epochs {window} with "
                            f"{condition}; need at least 2")  # fmt: skip
    if token_space(rep):  # the stored embeddings are pooled; the decoder needs token latents
        from ..hyperrep.data import read_states

        z = embed(rep, read_states(zoo, frame[["model_id", "epoch"]])).astype(np.float64)
    else:
        z = frame[columns].to_numpy(np.float64)
    return Anchors(frame["model_id"].to_numpy(np.int64), frame["epoch"].to_numpy(np.int64), z,
                   frame["test_acc"].to_numpy(float))  # fmt: skip


def generated_spec(zoo: Any, name: str, seeds: list[int], finetune_epochs: int,
                   dataset: dict | None, provenance: dict) -> Any:  # fmt: skip
    """The source zoo's spec, turned into the spec of the generated models."""
    from ..spec import validate

    raw = json.loads(json.dumps(zoo.manifest["spec"]))
    raw["name"] = name
    raw["grid"] = {}
    raw["seeds"] = {"values": [int(s) for s in seeds]}
    raw["training"]["epochs"] = max(1, int(finetune_epochs))
    raw["store"] = {**raw.get("store", {}), "epochs": list(range(int(finetune_epochs) + 1))}
    raw["execution"] = {"engine": raw.get("execution", {}).get("engine", "vectorized")}
    if dataset is not None:
        raw["dataset"] = dataset
    raw["description"] = (f"{provenance['n']} networks sampled with {provenance['method']} from "
                          f"train-ae run {provenance['run']}")  # fmt: skip
    raw["source"] = json.dumps(provenance, sort_keys=True)
    return validate(raw, f"<sample of {zoo.path}>")


def train_from(runs: list, data: Any, initial: np.ndarray | None, epochs: int, engine: str) -> list:
    """Train ``runs`` for ``epochs`` (0: evaluate only) from ``initial`` weights (None: their
    seeded initialisation), with the zoo's engine; results carry the runs' own keys."""
    from ..architectures import get_architecture

    engine_runs = [dataclasses.replace(r, training={**r.training, "epochs": int(epochs)})
                   for r in runs]  # fmt: skip
    if engine == "vectorized" and get_architecture(runs[0].architecture["name"]).is_layer_table:
        from ..train.vectorized import train_vectorized

        results = train_vectorized(engine_runs, data, "cpu", initial=initial)
    else:
        from ..train.reference import train_reference

        results = [train_reference(r, data, "cpu", initial=None if initial is None else initial[i])
                   for i, r in enumerate(engine_runs)]  # fmt: skip
    for result, run in zip(results, runs):
        result.run_key = run.key
    return results


def write_zoo(out: Path, spec: Any, runs: list, results: list, zoo: Any, dataset: dict) -> Path:
    """Seal the results as a zoo at ``out`` (written beside it, renamed when complete)."""
    from ..store.writer import ZooWriter

    work = out.with_name(out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    try:
        with ZooWriter(work, spec, runs, dataset, zoo.manifest["layout"]) as writer:
            writer.add(results)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def finetune_dataset(zoo: Any, name: str | None) -> dict | None:
    """The dataset section to fine-tune on (None: the zoo's own); shapes must match."""
    if name is None:
        return None
    from ..data import DataConfig, input_shape, num_classes

    own = zoo.manifest["spec"]["dataset"]
    options = own.get("options", {}) if name == own["name"] else {}  # the zoo's own: its settings
    section = {**own, "name": name, "options": options}
    shape = input_shape(DataConfig.from_section(section))
    classes = num_classes(name)
    if tuple(shape) != tuple(zoo.input_shape) or classes != zoo.num_classes:
        raise ModelZooError(f"--finetune-data {name}: images {list(shape)} with {classes} classes; "
                            f"the zoo's networks take {list(zoo.input_shape)} with "
                            f"{zoo.num_classes} (resize/grayscale it in a spec)")  # fmt: skip
    return section


def results_table(results: list, epochs: list[int], label: str) -> pd.DataFrame:
    """Long table: label, model, epoch, test_acc, test_loss, train_acc."""
    rows = []
    for i, result in enumerate(results):
        for row, epoch in enumerate(epochs):
            rows.append({"label": label, "model": i, "epoch": int(epoch),
                         **{k: float(result.metrics[k][row]) for k in
                            ("test_acc", "test_loss", "train_acc")}})  # fmt: skip
    return pd.DataFrame(rows)
