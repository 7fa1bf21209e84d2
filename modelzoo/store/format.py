"""The on-disk format of a zoo (version 1), in one place. docs/storage.md describes it for readers
who do not use this library; keep the two in step.

storage/<zoo>/zoo.json        manifest (the commit point: only shards it lists belong to the zoo)
storage/<zoo>/models.parquet  one row per model
storage/<zoo>/metrics.parquet one row per (model, stored epoch)
storage/<zoo>/shards/*.h5     sealed HDF5 shards: weights [models, epochs, params] and, so that a
                              shard is self-describing, the same models' metrics, status and keys
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import StoreError

FORMAT_NAME = "modelzoo-store"
FORMAT_VERSION = 1
MANIFEST = "zoo.json"
MODELS_TABLE = "models.parquet"
METRICS_TABLE = "metrics.parquet"
SHARD_DIR = "shards"
NORMALIZATION_FILE = "normalization.json"
TMP_SUFFIX = ".tmp"

# HDF5 dataset names inside a shard
W_WEIGHTS, W_MODEL_IDS, W_RUN_KEYS = "weights", "model_ids", "run_keys"
W_METRICS, W_F1, W_STATUS, W_ERRORS, W_DIVERGED = (
    "metrics",
    "f1",
    "status",
    "errors",
    "diverged_epoch",
)
CHUNK_BYTES_LIMIT = 1 << 20  # one (model, all epochs) chunk when it fits in 1 MiB


def shard_name(first_model_id: int) -> str:
    return f"{SHARD_DIR}/shard-{first_model_id:07d}.h5"


def safe_member(zoo_dir: Path, relative: str) -> Path:
    """Resolve a path named by a manifest, refusing anything that escapes the zoo folder."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative) or "\\" in relative:
        raise StoreError(
            f"{zoo_dir / MANIFEST}: path {relative!r} is not a relative path in the zoo"
        )
    root = zoo_dir.resolve()
    target = (root / relative).resolve()
    if root != target and root not in target.parents:
        raise StoreError(f"{zoo_dir / MANIFEST}: path {relative!r} escapes the zoo folder")
    return target


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file whole under a temporary name, flush it to disk, then rename over the target."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())


def read_manifest(zoo_dir: Path) -> dict:
    """Load and check zoo.json: one clear StoreError for anything that is not a v1 manifest."""
    path = zoo_dir / MANIFEST
    if not zoo_dir.exists():
        raise StoreError(f"{zoo_dir}: no such zoo folder")
    if not zoo_dir.is_dir():
        raise StoreError(f"{zoo_dir}: is not a folder (a zoo is a folder with {MANIFEST})")
    if not path.is_file():
        raise StoreError(f"{zoo_dir}: not a zoo ({MANIFEST} is missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{path}: unreadable manifest: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise StoreError(f"{path}: format: expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        newer = (
            isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        )
        hint = (
            "a newer modelzoo wrote it; upgrade modelzoo"
            if newer
            else "not a version modelzoo wrote"
        )
        raise StoreError(
            f"{path}: format_version: expected {FORMAT_VERSION}, got {version!r} ({hint})"
        )
    for key in ("name", "layout", "epochs", "shards", "spec", "dataset", "architecture"):
        if key not in manifest:
            raise StoreError(f"{path}: {key}: required key is missing")
    for shard in manifest["shards"]:
        if not isinstance(shard, dict) or not {"path", "sha256", "models"} <= set(shard):
            raise StoreError(f"{path}: shards: every entry needs path, sha256 and models")
        safe_member(zoo_dir, shard["path"])
    return manifest
