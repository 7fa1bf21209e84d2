"""The Python API: ``train_autoencoder(zoo, config)`` and ``load_autoencoder(run_dir)``, both giving
a :class:`HyperRepresentation` that encodes raw weight vectors and decodes latents back to them.

A HyperRepresentation needs only its run folder (the architecture is recorded in ``config.yaml``),
not the zoo it was trained on: normalisation and tokenisation happen inside ``encode`` and are
inverted inside ``decode``, so both speak the zoo's raw flat layout (``zoo.weights``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ModelZooError
from ..tokens import WeightStructure
from . import folder, reading
from .autoencoders import build_autoencoder
from .config import build_config, merge, resolve
from .data import model_splits, read_states, recorded_pairs

CHUNK = 4096


class HyperRepresentation:
    """A trained autoencoder with its normalisation, read from (or just written to) a run folder."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        self.run_dir = folder.check_run_dir(Path(run_dir))
        self.config: dict[str, Any] = reading.read_run_config(self.run_dir / folder.CONFIG)
        self.plan = reading.plan_of(self.config, self.run_dir / folder.CONFIG)
        self.structure = WeightStructure.of(self.plan)
        from ..devices import check_device_here, resolve_device

        self.device = torch.device(resolve_device(device))
        check_device_here(str(self.device))
        self.model = build_autoencoder(self.config["model"], self.structure)
        self.tokens = type(self.model).token_plan(self.structure, self.config["model"])
        selected = folder.selected_weights(self.run_dir, self.config)
        weights, self.epoch = folder.read_checkpoint(selected)  # epoch: the training epoch
        reading.load_weights(self.model, weights, selected)
        self.model.to(self.device).eval()
        self.norm = reading.read_normalization(self.run_dir / folder.NORMALIZATION, self.plan)
        self._embeddings: pd.DataFrame | None = None

    @property
    def latent(self) -> int:
        return int(self.config["model"]["latent"])

    @property
    def parameters(self) -> int:
        return self.plan.parameters

    @property
    def embeddings(self) -> pd.DataFrame:
        """model_id, epoch, split, z_0..z_{L-1}: every recorded state of the zoo."""
        if self._embeddings is None:
            self._embeddings = reading.read_embeddings(
                self.run_dir / folder.EMBEDDINGS, self.latent
            )
        return self._embeddings

    @property
    def log(self) -> pd.DataFrame:
        return folder.read_parquet(self.run_dir / folder.LOG)

    def _check(self, flat: np.ndarray) -> np.ndarray:
        flat = np.asarray(flat)
        if not np.issubdtype(flat.dtype, np.number):
            raise ModelZooError(f"encode: expected numeric weights, got dtype {flat.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range: inf, refused below
            flat = flat.astype(np.float32)
        if flat.ndim != 2 or flat.shape[1] != self.parameters:
            raise ModelZooError(
                f"encode: expected weights [N, {self.parameters}], got {list(flat.shape)}"
            )
        bad = int((~np.isfinite(flat).all(axis=1)).sum())
        if bad:
            raise ModelZooError(f"encode: {bad} of {len(flat)} weight vectors hold NaN or inf, or "
                                "values beyond float32's range (a diverged model has no embedding; "
                                "drop those rows)")  # fmt: skip
        return flat

    @torch.no_grad()
    def encode(self, flat: np.ndarray, per_token: bool = False) -> np.ndarray:
        """Raw flat weights ``[N, P]`` -> embeddings ``[N, L]`` (``per_token``: the sequential
        model's token latents ``[N, tokens, L]``, which is what :meth:`decode` takes for it)."""
        flat = self._check(flat)
        if per_token and self.config["model"]["name"] != "sequential":
            raise ModelZooError(f"encode: per_token is for the sequential model; this run's "
                                f"is {self.config['model']['name']!r} (one latent per network)")  # fmt: skip
        out = []
        for start in range(0, len(flat), CHUNK):
            part = torch.from_numpy(self.norm.apply(flat[start : start + CHUNK])).to(self.device)
            z = self.model.encode(self.tokens.tokenize(part))
            out.append((z if per_token else self.model.embed(z)).cpu().numpy())
        bad = sum(int((~np.isfinite(z.reshape(len(z), -1)).all(axis=1)).sum()) for z in out)
        if bad:
            raise ModelZooError(f"encode: {bad} of {len(flat)} weight vectors encode to NaN or inf "
                                "(weights far outside what this encoder was trained on?)")  # fmt: skip
        return np.concatenate(out) if out else np.zeros((0, self.latent), np.float32)

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents -> raw flat weights ``[N, P]`` in the zoo's layout (normalisation inverted)."""
        z = np.asarray(z, dtype=np.float32)
        if self.config["loss"]["gamma"] == 1:
            raise ModelZooError(f"decode: {self.run_dir} was trained with loss.gamma=1 (contrast "
                                "only): its decoder was never trained")  # fmt: skip
        sequential = self.config["model"]["name"] == "sequential"
        expected = 3 if sequential else 2
        if z.ndim != expected or z.shape[-1] != self.latent:
            shape = (
                "[N, tokens, L] token latents (encode(w, per_token=True))"
                if sequential
                else "[N, L]"
            )
            raise ModelZooError(
                f"decode: expected {shape} with L={self.latent}, got {list(z.shape)}"
            )
        if not np.isfinite(z).all():
            raise ModelZooError("decode: the latents hold NaN or inf")
        out = []
        for start in range(0, len(z), CHUNK):
            part = torch.from_numpy(z[start : start + CHUNK]).to(self.device)
            flat = self.tokens.detokenize(self.model.decode(part)).cpu().numpy()
            out.append(self.norm.invert(flat).astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.parameters), np.float32)

    def __repr__(self) -> str:
        return (
            f"<HyperRepresentation {self.config['model']['name']} L={self.latent} of zoo "
            f"{self.config['zoo']['name']!r}; {self.run_dir}>"
        )


def load_autoencoder(run_dir: str | Path, device: str = "cpu") -> HyperRepresentation:
    """The autoencoder of a complete ``train-ae`` run folder."""
    return HyperRepresentation(run_dir, device)


def zoo_record(
    zoo: Any, config: dict[str, Any], epochs: list[int], states: list[int]
) -> dict[str, Any]:
    """The ``zoo:`` mapping of config.yaml: what the run was trained on, and how it was split
    (``states``: train / val / test states, so a resume notices a zoo that has grown since)."""
    return {
        "path": str(Path(zoo.path).resolve()),
        "name": zoo.name,
        "spec_fingerprint": zoo.manifest.get("spec_fingerprint"),
        "parameters": int(zoo.parameters),
        "architecture": zoo.architecture,
        "input_shape": [int(v) for v in zoo.input_shape],
        "num_classes": int(zoo.num_classes),
        "splits": list(config["data"]["splits"]),
        "split_seed": int(config["data"]["split_seed"]),
        "epochs": [int(e) for e in epochs],
        "split_states": [int(n) for n in states],
    }


def train_autoencoder(
    zoo: Any,
    config: dict[str, Any] | None = None,
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> HyperRepresentation:
    """Train an autoencoder on ``zoo`` (a Zoo or its folder) and write the run folder ``out``
    (default: a new temporary folder). ``config`` is a nested mapping over the defaults (and over
    ``preset``); an interrupted run with the same config and ``out`` is resumed."""
    from ..zoo import open_zoo

    resolved = build_config(preset)
    if config:
        resolved = resolve(merge(resolved, config, "config"), "config")
    if not hasattr(zoo, "weights"):
        zoo = open_zoo(zoo)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="modelzoo-ae-")) / "run"
    return run_training(zoo, resolved, out, preset=preset, progress=progress)


def run_training(
    zoo: Any, config: dict[str, Any], out: Path, preset: str | None, progress: bool
) -> HyperRepresentation:
    """Validate everything, then train into ``out.partial`` and rename it to ``out``."""
    from ..devices import check_device_here, resolve_device
    from ..outdir import claimed
    from .data import epoch_window
    from .train import Trainer

    out = folder.check_out(out)
    config = {**config, "train": {**config["train"],
                                  "device": resolve_device(config["train"]["device"])}}  # fmt: skip
    check_device_here(config["train"]["device"])
    if config["data"]["data_dir"]:  # recorded for probe and sample, which may run elsewhere
        resolved = str(Path(config["data"]["data_dir"]).expanduser().resolve())
        config = {**config, "data": {**config["data"], "data_dir": resolved}}
    # one process per run folder (a second one is refused before it reads the zoo); a failure
    # before anything is written leaves no folder, a kill -9 leaves it resumable
    with claimed(out, "train-ae", keep_on_failure=True) as work:
        trainer = Trainer(zoo, config, work)  # reads and checks everything; writes nothing
        states = [len(trainer.splits[name]) for name in ("train", "val", "test")]
        epochs = epoch_window(zoo, config["data"]["epochs"])
        record = {"format": folder.FORMAT, "preset": preset, **config,
                  "zoo": zoo_record(zoo, config, epochs, states)}  # fmt: skip
        if (work / folder.CONFIG).is_file():
            previous = folder.read_yaml(work / folder.CONFIG)
            if _comparable(previous) != _comparable(record):
                key = next(
                    (k for k in _flat(record) if _flat(previous).get(k) != _flat(record)[k]), "?"
                )
                raise ModelZooError(
                    f"{work}: an interrupted run with a different config or zoo ({key}: "
                    f"{_flat(previous).get(key)!r} there, {_flat(record).get(key)!r} "
                    "now); delete it or choose another --out"
                )
            trainer.resume()
        else:
            folder.write_yaml(work / folder.CONFIG, record)
            folder.write_json(work / folder.NORMALIZATION, trainer.norm.as_json())
        if trainer.epoch < trainer.epochs:
            trainer.run(progress=progress)
        finish(trainer, zoo, work)
    return HyperRepresentation(out, config["train"]["device"])


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{s}.{k}": v
        for s, keys in record.items()
        if isinstance(keys, dict)
        for k, v in keys.items()
    }


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """What must agree for a resume (the device may differ only in the run's own record)."""
    flat = _flat(record)
    flat.pop("zoo.path", None)
    return flat


def finish(trainer: Any, zoo: Any, work: Path) -> None:
    """Embeddings of every recorded state of the zoo, and the curves."""
    log = pd.DataFrame(trainer.log)
    folder.curves(work / folder.CURVES, log)
    config = trainer.config
    if config["train"]["select"] == "best" and not (work / folder.BEST).is_file():
        shutil.copyfile(work / folder.FINAL, work / folder.BEST)  # no finite validation loss
    weights = folder.read_tensors(folder.selected_weights(work, config))
    trainer.modules.load_state_dict(weights)
    trainer.modules.eval()
    split_of = {}  # the splits training used: models it left out (data.status) are "none"
    for name, ids in model_splits(zoo, config["data"]).items():
        split_of.update(dict.fromkeys(ids.tolist(), name))
    pairs = recorded_pairs(zoo, zoo.model_ids, zoo.epochs)
    rows = []
    for start in range(0, len(pairs), CHUNK):
        part = pairs.iloc[start : start + CHUNK].reset_index(drop=True)
        raw = read_states(zoo, part)
        finite = np.isfinite(raw).all(axis=1)
        part, raw = part[finite].reset_index(drop=True), raw[finite]
        with torch.no_grad():
            flat = torch.from_numpy(trainer.norm.apply(raw)).to(trainer.device)
            z = trainer.model.embed(trainer.model.encode(trainer.plan.tokenize(flat))).cpu().numpy()
        embedded = np.isfinite(z).all(axis=1)  # weights far outside training can encode to NaN
        part, z = part[embedded].reset_index(drop=True), z[embedded]
        frame = pd.DataFrame(z, columns=[f"z_{i}" for i in range(z.shape[1])])
        frame.insert(0, "split", [split_of.get(int(m), "none") for m in part["model_id"]])
        frame.insert(0, "epoch", part["epoch"].to_numpy(dtype=np.int64))
        frame.insert(0, "model_id", part["model_id"].to_numpy(dtype=np.int64))
        rows.append(frame)
    embeddings = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if embeddings.empty:
        raise ModelZooError(f"train-ae diverged: the encoder maps every state of the zoo to NaN or "
                            f"inf; try a lower train.lr. Delete {work} to start over")  # fmt: skip
    folder.write_parquet(work / folder.EMBEDDINGS, embeddings)
