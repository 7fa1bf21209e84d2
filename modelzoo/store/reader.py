"""Reading a zoo: its two tables and its sealed weight shards, with one clear error for any damage.

Why it looks like this:

* HDF5 handles do not survive ``fork`` and cannot be pickled, so :class:`ShardReader` opens each
  shard lazily *per process* (it remembers ``os.getpid()``) and drops its handles when pickled. A
  ``Zoo`` can therefore be handed to DataLoader workers, forked or spawned, as it is.
* Shards are sealed (never written again) and opened read-only (HDF5 takes only shared locks):
  any number of readers, in any number of processes, may read one zoo at once.
* Reads are vectorised: requested (model, epoch) pairs are grouped by shard and read with sorted
  fancy indexing, one HDF5 call per shard and epoch (or one per shard when whole chunks of all
  epochs are wanted), never one call per model.
* Every h5py / pyarrow failure is turned into a :class:`~modelzoo.errors.StoreError` that names
  the file and suggests ``modelzoo verify``. Nothing is ever unpickled: tables are Parquet read by
  pyarrow, shards hold plain numeric and string datasets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import StoreError
from . import format as fmt

MODELS_COLUMNS = ("model_id", "status", "shard", "row")
METRICS_COLUMNS = ("model_id", "epoch", "test_acc")
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def read_table(zoo_dir: Path, name: str, required: Sequence[str]) -> pd.DataFrame:
    """One Parquet table of the zoo, read by pyarrow (no pickled pandas metadata is honoured)."""
    path = zoo_dir / name
    if not path.is_file():
        raise StoreError(f"{path}: table is missing (every zoo has {name}); run `modelzoo verify`")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as error:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise StoreError(f"{path}: unreadable table: {error}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise StoreError(f"{path}: columns {missing} are missing (expected {list(required)})")
    return frame


def damaged(path: Path, detail: object) -> StoreError:
    return StoreError(f"{path}: damaged or truncated shard ({detail}); run `modelzoo verify`")


class ShardReader:
    """Lazy, per-process, read-only access to the weight datasets of a zoo's shards.

    ``shards`` are the manifest entries; ``epochs`` and ``parameters`` give the expected
    ``[models, epochs, parameters]`` shape that each shard is checked against when first opened.
    """

    def __init__(self, zoo_dir: Path, shards: Sequence[dict], epochs: int, parameters: int) -> None:
        self.zoo_dir = Path(zoo_dir)
        self.paths = [fmt.safe_member(self.zoo_dir, s["path"]) for s in shards]
        self.meta = [dict(s) for s in shards]
        self.epochs = int(epochs)
        self.parameters = int(parameters)
        self._pid = os.getpid()
        self._files: dict[int, h5py.File] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._files.values():
                handle.close()
        self._files = {}

    def dataset(self, shard: int) -> h5py.Dataset:
        """The checked ``weights`` dataset of shard ``shard`` (opened on first use in a process)."""
        if self._pid != os.getpid():  # a forked child: the parent's handles are not ours
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(shard)
        if handle is None:
            handle = self._open(shard)
            self._files[shard] = handle
        return handle[fmt.W_WEIGHTS]

    def _open(self, shard: int) -> h5py.File:
        path, meta = self.paths[shard], self.meta[shard]
        if not path.is_file():
            raise StoreError(f"{path}: shard listed in {fmt.MANIFEST} is missing")
        size = path.stat().st_size
        if "bytes" in meta and size != meta["bytes"]:
            raise damaged(path, f"{size} bytes, the manifest says {meta['bytes']}")
        try:
            handle = h5py.File(path, "r")
        except _H5_ERRORS as error:
            raise damaged(path, f"HDF5 cannot open it: {error}") from None
        try:
            weights = handle[fmt.W_WEIGHTS]
            expected = (int(meta["models"]), self.epochs, self.parameters)
            if weights.shape != expected or weights.dtype != np.float32:
                raise damaged(path, f"weights are {weights.dtype} {weights.shape}, "
                                    f"expected float32 {expected}")  # fmt: skip
        except StoreError:
            handle.close()
            raise
        except _H5_ERRORS as error:
            handle.close()
            raise damaged(path, f"no readable '{fmt.W_WEIGHTS}' dataset: {error}") from None
        return handle

    def read_pairs(self, shards: np.ndarray, rows: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """float32 ``[N, parameters]``: row ``rows[i]`` of shard ``shards[i]`` at epoch index
        ``epochs[i]``. Pairs may repeat and come in any order."""
        shards, rows, epochs = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (shards, rows, epochs))
        out = np.empty((shards.size, self.parameters), dtype=np.float32)
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            out[where] = self._read_shard_pairs(int(shard), rows[where], epochs[where])
        return out

    def _read_shard_pairs(self, shard: int, rows: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        dataset = self.dataset(shard)
        out = np.empty((rows.size, self.parameters), dtype=np.float32)
        unique_rows = np.unique(rows)
        unique_epochs = np.unique(epochs)
        whole_chunks = dataset.chunks is not None and dataset.chunks[1] == self.epochs
        try:
            if whole_chunks and unique_epochs.size * 2 > self.epochs:
                # most epochs of each row are wanted: read the rows' chunks whole, pick in memory
                block = dataset[_selector(unique_rows)]
                out[:] = block[np.searchsorted(unique_rows, rows), epochs]
                return out
            for epoch in unique_epochs:
                where = np.flatnonzero(epochs == epoch)
                wanted = np.unique(rows[where])
                block = dataset[_selector(wanted), int(epoch)]
                out[where] = block[np.searchsorted(wanted, rows[where])]
        except _H5_ERRORS as error:
            raise damaged(self.paths[shard], f"reading weights failed: {error}") from None
        return out


def _selector(sorted_rows: np.ndarray) -> slice | list[int]:
    """A slice when the rows are contiguous (one hyperslab), else h5py's sorted fancy index."""
    first, last = int(sorted_rows[0]), int(sorted_rows[-1])
    if last - first + 1 == sorted_rows.size:
        return slice(first, last + 1)
    return sorted_rows.tolist()
