"""The run folder: what ``train-ae`` writes and ``probe``, ``sample`` and ``load_autoencoder`` read.

    RUN_DIR/
      config.yaml           the resolved config, plus ``preset`` and a ``zoo:`` mapping (path, name,
                            spec_fingerprint, parameters, architecture, input_shape, num_classes,
                            splits, split_seed, epochs)
      normalization.json    the per-layer statistics used (train split), and whether applied
      final.safetensors     autoencoder + projection head weights after the last epoch
      best.safetensors      the same at the epoch of the lowest validation loss
      checkpoints/epoch_NNNN.safetensors   every ``train.checkpoint_every`` epochs
      state.safetensors     resume state: weights + optimizer moments (tensors) ...
      state.json            ... + epoch, step, best epoch and loss, optimizer settings (JSON)
      log.parquet           one row per epoch: every loss term (train and val), lr, seconds,
                            r2_{train,val,test}, r2_{split}_{layer}, paper_r2_{val,test}
      curves.png            losses and R^2 over epochs
      embeddings.parquet    model_id, epoch, split, z_0..z_{L-1}: every recorded state of the zoo

Nothing is pickled: tensors are safetensors, the rest YAML/JSON/Parquet. While training, the
folder is ``RUN_DIR.partial``; it is renamed to RUN_DIR only when complete, so a RUN_DIR is never
half-written, and rerunning the same command resumes from ``RUN_DIR.partial``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..errors import ModelZooError
from ..outdir import new_folder, partial
from ..yamlfile import read_yaml as read_yaml_data
from .config import RUN_FORMAT

CONFIG, NORMALIZATION, LOG = "config.yaml", "normalization.json", "log.parquet"
FINAL, BEST, STATE, STATE_JSON = (
    "final.safetensors",
    "best.safetensors",
    "state.safetensors",
    "state.json",
)
CURVES, EMBEDDINGS, CHECKPOINTS = "curves.png", "embeddings.parquet", "checkpoints"
FORMAT = RUN_FORMAT
METADATA = "modelzoo"  # the one safetensors metadata key: JSON {"epoch", "format"}


@functools.cache
def _file_mode() -> int:
    """0644 under the process umask (read once, when the first file is written)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o644 & ~umask


def check_out(out: Path) -> Path:
    """The run folder to create for ``out`` (absolute), or one line, before anything is read or
    written, for an --out that cannot become a run."""
    return new_folder(out, finished=CONFIG)


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600; a run folder is shared like a zoo
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path, document: Any) -> None:
    write_text(path, json.dumps(document, indent=2) + "\n")


def write_yaml(path: Path, document: Any) -> None:
    write_text(path, yaml.safe_dump(document, sort_keys=False))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], epoch: int) -> None:
    """Tensors plus one metadata entry (JSON, sorted keys: safetensors writes several entries
    in hash order, and equal weights should give equal bytes)."""
    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {METADATA: json.dumps({"epoch": int(epoch), "format": FORMAT}, sort_keys=True)}
    _atomic(path, lambda tmp: save_file(plain, tmp, metadata=meta))


def write_parquet(path: Path, frame) -> None:
    _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError on a damaged file
        raise ModelZooError(f"{path}: cannot read autoencoder weights: {one_line(error)}") from None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """A checkpoint's tensors and the training epoch in its metadata, from one read of the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            entry = (handle.metadata() or {}).get(METADATA)
            tensors = {n: handle.get_tensor(n) for n in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as error:  # safetensors raises its own SafetensorError on a damaged file
        raise ModelZooError(f"{path}: cannot read autoencoder weights: {one_line(error)}") from None
    try:
        recorded = json.loads(entry)["epoch"]
    except (TypeError, ValueError, KeyError):
        recorded = None
    if isinstance(recorded, bool) or not isinstance(recorded, int) or recorded < 0:
        raise ModelZooError(f"{path}: no epoch in its metadata (not a train-ae checkpoint)")
    return tensors, recorded


def read_parquet(path: Path):
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as error:  # missing, truncated or not Parquet: pyarrow's errors vary
        raise ModelZooError(f"{path}: cannot read: {one_line(error)}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    loaded = read_yaml_data(path)
    if not isinstance(loaded, dict):
        raise ModelZooError(f"{path}: expected a mapping")
    return loaded


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelZooError(f"{path}: cannot read: {one_line(error)}") from None


def check_run_dir(run_dir: Path) -> Path:
    """``run_dir`` if it holds a complete run (config + weights), else one clear error."""
    run_dir = Path(run_dir).expanduser()  # a quoted '~/runs/x' too
    missing = [n for n in (CONFIG, NORMALIZATION, FINAL) if not (run_dir / n).is_file()]
    if missing:
        hint = (
            " (still training or interrupted: rerun train-ae to finish it)"
            if partial(run_dir).exists()
            else ""
        )
        raise ModelZooError(
            f"{run_dir}: not a train-ae run folder: missing {', '.join(missing)}{hint}"
        )
    return run_dir


def selected_weights(run_dir: Path, config: dict[str, Any]) -> Path:
    """The checkpoint ``train.select`` names; a missing one is an error, never a silent swap."""
    path = run_dir / (BEST if config["train"]["select"] == "best" else FINAL)
    if not path.is_file():
        raise ModelZooError(f"{run_dir}: not a complete train-ae run folder: missing {path.name} "
                            f"(train.select={config['train']['select']})")  # fmt: skip
    return path


# --------------------------------------------------------------------------- optimizer state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW's state as tensors (``optim.{param}.{name}``) + its settings as JSON."""
    state = optimizer.state_dict()
    tensors = {
        f"optim.{index}.{name}": torch.as_tensor(value)
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], settings: dict
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": settings["param_groups"]})


def curves(path: Path, log) -> None:
    """Losses (train and val) and R^2 (train/val/test) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for column in (
        "train_loss",
        "val_loss",
        "train_structural",
        "val_structural",
        "train_contrast",
        "train_behaviour",
    ):
        if column in log and log[column].notna().any() and (log[column] != 0).any():
            left.plot(log["epoch"], log[column], label=column)
    left.set(xlabel="epoch", ylabel="loss", title="losses")
    left.set_yscale("symlog", linthresh=1e-3)
    left.legend(fontsize=8)
    for column in ("r2_train", "r2_val", "r2_test", "paper_r2_test"):
        if column in log and log[column].notna().any():
            rows = log[log[column].notna()]
            right.plot(rows["epoch"], rows[column], marker=".", label=column)
    right.set(xlabel="epoch", ylabel="R^2", title="reconstruction R^2 (raw weights)")
    right.legend(fontsize=8)
    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
