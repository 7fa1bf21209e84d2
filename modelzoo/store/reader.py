"""Reading a zoo: its two tables and its sealed weight shards, with one clear error for any damage.

Why it looks like this:

* HDF5 handles do not survive ``fork`` and cannot be pickled, so :class:`ShardReader` opens each
  shard lazily *per process* (it remembers ``os.getpid()``) and drops its handles when pickled. A
  ``Zoo`` can therefore be handed to DataLoader workers, forked or spawned, as it is.
* Shards are sealed (never written again) and opened read-only (HDF5 takes only shared locks):
  any number of readers, in any number of processes, may read one zoo at once.
* Reads are vectorised: requested (model, epoch) pairs are grouped by shard. Shards as the writer
  makes them (float32, no filters, chunks of whole parameter rows) are read without going through
  HDF5 per request: the byte offset of every weight vector is taken from the chunk index once per
  process, and each run of adjacent vectors is one ``os.preadv`` straight into the output (about
  20x a plain h5py read; a short read is reported, never a crash). Other layouts go through h5py
  with sorted fancy indexing, one call per shard and epoch.
* Every h5py / pyarrow failure is turned into a :class:`~modelzoo.errors.StoreError` that names
  the file and suggests ``modelzoo verify``. Nothing is ever unpickled: tables are Parquet read by
  pyarrow, shards hold plain numeric and string datasets.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import ModelZooError, StoreError
from . import format as fmt

MODELS_COLUMNS = ("model_id", "status", "shard", "row")
METRICS_COLUMNS = ("model_id", "epoch", "test_acc")
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
_MAX_READ = 1 << 28  # bytes per preadv call


def read_table(zoo_dir: Path, name: str, required: Sequence[str]) -> pd.DataFrame:
    """One Parquet table of the zoo, read by pyarrow (no pickled pandas metadata is honoured)."""
    path = zoo_dir / name
    if not path.is_file():
        raise StoreError(f"{path}: table is missing (every zoo has {name}); run `modelzoo verify`")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as error:
        raise StoreError(f"{path}: unreadable table: {error}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing and len(frame) == 0:  # a zoo committed before its first model: columns may lack
        return frame.assign(**{c: pd.Series(dtype="int64") for c in missing})
    if missing:
        raise StoreError(f"{path}: columns {missing} are missing (expected {list(required)})")
    return frame


def damaged(path: Path, detail: object) -> StoreError:
    return StoreError(f"{path}: damaged or truncated shard ({detail}); run `modelzoo verify`")


class _OpenShard:
    """One shard opened in this process: its h5py handle and, when the weights are stored plainly
    (float32 little-endian, no filters, chunks of whole parameter rows or contiguous), the file
    offset of every (model row, epoch) vector so reads can bypass HDF5 with ``os.preadv``."""

    def __init__(self, path: Path, handle: h5py.File, weights: h5py.Dataset) -> None:
        self.path, self.handle, self.weights = path, handle, weights
        self.offsets = _vector_offsets(weights) if hasattr(os, "preadv") else None
        self.fd = -1
        if self.offsets is not None:
            if self.offsets.max() + weights.shape[2] * 4 > path.stat().st_size:
                raise damaged(path, "weight data end past the end of the file")
            self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        self._close_fd()
        self.handle.close()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __del__(self) -> None:  # a Zoo dropped without close(): do not leak the descriptor
        with contextlib.suppress(OSError, AttributeError):
            self._close_fd()


def _vector_offsets(weights: h5py.Dataset) -> np.ndarray | None:
    """int64 ``[models, epochs]`` byte offsets of each weight vector, or None (read via h5py)."""
    models, epochs, params = weights.shape
    if weights.dtype != np.dtype("<f4") or np.dtype("=f4") != np.dtype("<f4") or weights.size == 0:
        return None
    try:
        if weights.id.get_create_plist().get_nfilters() != 0:
            return None
        row_bytes = params * 4
        if weights.chunks is None:
            base = weights.id.get_offset()
            if base is None:
                return None
            return base + (np.arange(models)[:, None] * epochs + np.arange(epochs)) * row_bytes
        one, per_chunk, width = weights.chunks
        if one != 1 or width != params:
            return None
        offsets = np.full((models, epochs), -1, dtype=np.int64)

        def place(info) -> None:
            row, first, _ = info.chunk_offset
            last = min(first + per_chunk, epochs)
            offsets[row, first:last] = info.byte_offset + np.arange(last - first) * row_bytes

        try:
            weights.id.chunk_iter(place)  # HDF5 >= 1.12.3: one pass over the chunk index
        except (AttributeError, NotImplementedError):
            for index in range(weights.id.get_num_chunks()):
                place(weights.id.get_chunk_info(index))
    except (OSError, RuntimeError, ValueError, AttributeError, TypeError):
        return None
    return offsets if offsets.min() >= 0 else None


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
        self._open: dict[int, _OpenShard] = {}
        self._lock = threading.Lock()  # two threads never open the same shard twice

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid, self._lock = os.getpid(), threading.Lock()

    def close(self) -> None:
        if self._pid == os.getpid():
            for shard in self._open.values():
                shard.close()
        self._open = {}

    def shard(self, index: int) -> _OpenShard:
        """Shard ``index``, checked and opened on first use in this process."""
        if self._pid != os.getpid():  # a forked child: the parent's handles are not ours
            for inherited in self._open.values():
                if inherited.fd >= 0:
                    os.close(inherited.fd)  # our copy of the descriptor; the parent keeps its own
                    inherited.fd = -1
            self._open, self._pid, self._lock = {}, os.getpid(), threading.Lock()
        opened = self._open.get(index)
        if opened is None:
            with self._lock:
                opened = self._open.get(index)
                if opened is None:
                    opened = self._open[index] = self._open_shard(index)
        return opened

    def dataset(self, index: int) -> h5py.Dataset:
        """The checked ``weights`` dataset of shard ``index``."""
        return self.shard(index).weights

    def _open_shard(self, index: int) -> _OpenShard:
        path, meta = self.paths[index], self.meta[index]
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
                raise damaged(
                    path,
                    f"weights are {weights.dtype} {weights.shape}, expected float32 {expected}",
                )
            return _OpenShard(path, handle, weights)
        except StoreError:
            handle.close()
            raise
        except _H5_ERRORS as error:
            handle.close()
            raise damaged(path, f"no readable '{fmt.W_WEIGHTS}' dataset: {error}") from None

    def read_pairs(self, shards: np.ndarray, rows: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """float32 ``[N, parameters]``: row ``rows[i]`` of shard ``shards[i]`` at epoch index
        ``epochs[i]``. Pairs may repeat and come in any order."""
        shards, rows, epochs = (
            np.asarray(a, dtype=np.int64).reshape(-1) for a in (shards, rows, epochs)
        )
        out = np.empty((shards.size, self.parameters), dtype=np.float32)
        for index in np.unique(shards):
            where = np.flatnonzero(shards == index)
            shard = self.shard(int(index))
            if shard.offsets is not None:
                out[where] = self._read_direct(shard, shard.offsets[rows[where], epochs[where]])
            else:
                out[where] = self._read_hdf5(shard, rows[where], epochs[where])
        return out

    def _read_direct(self, shard: _OpenShard, offsets: np.ndarray) -> np.ndarray:
        """One ``preadv`` per run of adjacent vectors (sorted by file offset), into place."""
        row_bytes = self.parameters * 4
        order = np.argsort(offsets, kind="stable")
        ordered = offsets[order]
        starts = np.flatnonzero(np.r_[True, np.diff(ordered) != row_bytes])
        ends = np.r_[starts[1:], ordered.size]
        buffer = np.empty((ordered.size, self.parameters), dtype=np.float32)
        limit = max(1, _MAX_READ // row_bytes)
        for start, end in zip(starts.tolist(), ends.tolist()):
            for first in range(start, end, limit):
                last = min(end, first + limit)
                got = os.preadv(shard.fd, [buffer[first:last]], int(ordered[first]))
                if got != (last - first) * row_bytes:
                    raise damaged(shard.path, f"short read at byte {int(ordered[first])}")
        out = np.empty_like(buffer)
        out[order] = buffer
        return out

    def _read_hdf5(self, shard: _OpenShard, rows: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """Sorted fancy-index reads through h5py: one call per epoch (or per shard when most
        epochs of each row are wanted and chunks hold all epochs of a row)."""
        dataset = shard.weights
        out = np.empty((rows.size, self.parameters), dtype=np.float32)
        unique_rows, unique_epochs = np.unique(rows), np.unique(epochs)
        whole_chunks = dataset.chunks is not None and dataset.chunks[1] == self.epochs
        try:
            if whole_chunks and unique_epochs.size * 2 > self.epochs:
                block = dataset[_selector(unique_rows)]
                out[:] = block[np.searchsorted(unique_rows, rows), epochs]
                return out
            for epoch in unique_epochs:
                where = np.flatnonzero(epochs == epoch)
                wanted = np.unique(rows[where])
                block = dataset[_selector(wanted), int(epoch)]
                out[where] = block[np.searchsorted(wanted, rows[where])]
        except _H5_ERRORS as error:
            raise damaged(shard.path, f"reading weights failed: {error}") from None
        return out


def _selector(sorted_rows: np.ndarray) -> slice | list[int]:
    """A slice when the rows are contiguous (one hyperslab), else h5py's sorted fancy index."""
    first, last = int(sorted_rows[0]), int(sorted_rows[-1])
    if last - first + 1 == sorted_rows.size:
        return slice(first, last + 1)
    return sorted_rows.tolist()


class ZooFiles:
    """Everything the views of one opened zoo share: manifest, tables, layout, shard readers.

    Opening checks the manifest, reads both tables and checks that they agree with the manifest
    (shard paths, rows, counts), so a damaged zoo fails here with one line, before any read.
    """

    def __init__(self, path: Path) -> None:
        from ..nets import ParameterSlot  # imports torch: only when a zoo is opened for use

        self.path = path
        self.manifest = manifest = fmt.read_manifest(path)
        where = path / fmt.MANIFEST
        try:
            self.layout = tuple(
                ParameterSlot(s["name"], tuple(int(d) for d in s["shape"]), int(s["offset"]))
                for s in manifest["layout"]
            )
            self.epochs = np.asarray([int(e) for e in manifest["epochs"]], dtype=np.int64)
        except (TypeError, KeyError, ValueError) as error:
            raise StoreError(f"{where}: layout/epochs: malformed entry ({error})") from None
        offset = 0
        for slot in self.layout:
            if slot.offset != offset:
                raise StoreError(
                    f"{where}: layout: {slot.name} starts at {slot.offset}, expected {offset}"
                )
            offset += slot.size
        self.parameters = offset
        if self.epochs.size == 0 or np.any(np.diff(self.epochs) <= 0):
            raise StoreError(f"{where}: epochs: expected a non-empty increasing list")
        self.models = read_table(path, fmt.MODELS_TABLE, MODELS_COLUMNS)
        self.models = self.models.sort_values("model_id", kind="stable").reset_index(drop=True)
        self.metrics = read_table(path, fmt.METRICS_TABLE, METRICS_COLUMNS)
        self.model_ids = self.models["model_id"].to_numpy(dtype=np.int64)
        if np.unique(self.model_ids).size != self.model_ids.size:
            raise StoreError(f"{path / fmt.MODELS_TABLE}: model_id: values repeat")
        shard_paths = [s["path"] for s in manifest["shards"]]
        shard_of = pd.Index(shard_paths).get_indexer(self.models["shard"])
        if np.any(shard_of < 0):
            bad = sorted(set(self.models["shard"][shard_of < 0]))
            raise StoreError(
                f"{path / fmt.MODELS_TABLE}: shard: {bad} are not listed in {fmt.MANIFEST}"
            )
        self.shard_of = shard_of.astype(np.int64)
        self.row_of = self.models["row"].to_numpy(dtype=np.int64)
        sizes = np.asarray([int(s["models"]) for s in manifest["shards"]], dtype=np.int64)
        if np.any(self.row_of < 0) or np.any(self.row_of >= sizes[self.shard_of]):
            raise StoreError(f"{path / fmt.MODELS_TABLE}: row: points outside its shard")
        if sizes.sum() != len(self.models):
            raise StoreError(
                f"{path}: the shards hold {sizes.sum()} models, "
                f"{fmt.MODELS_TABLE} lists {len(self.models)}"
            )
        self.reader = ShardReader(path, manifest["shards"], self.epochs.size, self.parameters)

    def positions(self, ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        missing = np.setdiff1d(ids, allowed)
        if missing.size:
            raise ModelZooError(
                f"{self.path}: model_id {missing[:5].tolist()} not in this zoo view "
                f"({allowed.size} models)"
            )
        return np.searchsorted(self.model_ids, ids)

    def epoch_index(self, epochs: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.epochs, epochs).clip(0, self.epochs.size - 1)
        bad = epochs[self.epochs[index] != epochs]
        if bad.size:
            raise ModelZooError(
                f"{self.path}: epoch {bad[:5].tolist()} is not stored; stored epochs: "
                f"{compact(self.epochs.tolist())}"
            )
        return index


def compact(values: list[int]) -> str:
    """'0..25' for a run of consecutive numbers, else the first few."""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
