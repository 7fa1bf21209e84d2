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
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..architectures import ArchitecturePlan, ParameterSlot, plan_architecture
from ..errors import ModelZooError, StoreError
from . import format as fmt

MODELS_COLUMNS = ("model_id", "status", "shard", "row")
METRICS_COLUMNS = ("model_id", "epoch", "test_acc")
COLUMN_TYPES = {  # columns the readers index with: their Arrow type must be right
    "model_id": (pa.types.is_integer, "integers"),
    "row": (pa.types.is_integer, "integers"),
    "epoch": (pa.types.is_integer, "integers"),
    "status": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
    "shard": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
    "test_acc": (pa.types.is_floating, "floats"),
}
STATUSES = ("ok", "diverged", "failed")
COMMIT_WAIT = 1.0  # seconds a reader waits for a writer's commit in progress (tables, manifest)
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
_MAX_READ = 1 << 28  # bytes per preadv call


def read_table(zoo_dir: Path, name: str, required: Sequence[str]) -> pd.DataFrame:
    """One Parquet table of the zoo, read by pyarrow (no pickled pandas metadata is honoured).

    The file is read whole first, so a writer replacing it meanwhile cannot tear the read; the
    columns the readers rely on are checked for their type."""
    path = zoo_dir / name
    if not path.is_file():
        raise StoreError(f"{path}: table is missing (every zoo has {name}); run `modelzoo verify`")
    try:
        table = pq.read_table(pa.BufferReader(path.read_bytes()))
        frame = table.to_pandas()
    except Exception as error:
        raise StoreError(f"{path}: unreadable table: {error}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing and len(frame) == 0:  # a zoo committed before its first model: columns may lack
        return frame.assign(**{c: pd.Series(dtype="int64") for c in missing})
    if missing:
        raise StoreError(f"{path}: columns {missing} are missing (expected {list(required)})")
    for column, (check, kind) in COLUMN_TYPES.items():
        if column in table.column_names and not check(table.schema.field(column).type):
            raise StoreError(
                f"{path}: column {column!r} is {table.schema.field(column).type}, expected {kind}"
            )
    return frame


def committed_rows(
    zoo_dir: Path, models: pd.DataFrame, metrics: pd.DataFrame, listed: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The table rows the manifest has committed, and the sealed shards it has not (yet).

    A writer replaces models.parquet, then metrics.parquet, then zoo.json; a run killed in between
    leaves tables that already hold the rows of a sealed shard the manifest does not list. Those
    rows belong to no committed zoo state: drop them (the next ``modelzoo generate`` commits
    them). Rows naming a shard that is neither listed nor on disk are damage, and are kept so that
    the checks downstream report them.
    """
    listed_set = set(listed)
    pending = sorted(
        shard
        for shard in set(models["shard"]) - listed_set
        if isinstance(shard, str)
        and shard.startswith(f"{fmt.SHARD_DIR}/")
        and (zoo_dir / shard).is_file()
    )
    if not pending:
        return models, metrics, []
    dropped = models["shard"].isin(pending)
    dropped_ids = models.loc[dropped, "model_id"]
    models = models[~dropped].reset_index(drop=True)
    metrics = metrics[~metrics["model_id"].isin(dropped_ids)].reset_index(drop=True)
    return models, metrics, pending


MISSING = "missing"


def shard_problems(path: Path, shards: Sequence[dict]) -> list[tuple[Path, str]]:
    """Listed shards that are absent (``MISSING``) or not the byte size the manifest recorded: a
    stat per shard, no hashing (``modelzoo verify`` checks contents)."""
    problems = []
    for entry in shards:
        shard = fmt.safe_member(path, entry["path"])
        if not shard.is_file():
            problems.append((shard, MISSING))
            continue
        expected, size = entry.get("bytes"), shard.stat().st_size
        if isinstance(expected, int) and size != expected:
            problems.append((shard, f"{size} bytes, the manifest says {expected}"))
    return problems


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

    def __init__(
        self,
        zoo_dir: Path,
        shards: Sequence[dict],
        epochs: int,
        parameters: int,
        model_ids: Sequence[np.ndarray] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.zoo_dir = Path(zoo_dir)
        self.paths = [fmt.safe_member(self.zoo_dir, s["path"]) for s in shards]
        self.meta = [dict(s) for s in shards]
        self.epochs = int(epochs)
        self.parameters = int(parameters)
        self.model_ids = model_ids  # per shard: the model id the tables expect in each row
        self.fingerprint = fingerprint  # the manifest's spec_fingerprint
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
            self._check_identity(path, handle, index)
            return _OpenShard(path, handle, weights)
        except StoreError:
            handle.close()
            raise
        except _H5_ERRORS as error:
            handle.close()
            raise damaged(path, f"no readable '{fmt.W_WEIGHTS}' dataset: {error}") from None

    def _check_identity(self, path: Path, handle: h5py.File, index: int) -> None:
        """The shard must be the one the tables point at: this zoo's spec, these model ids."""
        theirs = handle.attrs.get("spec_fingerprint")
        if isinstance(theirs, bytes):
            theirs = theirs.decode(errors="replace")
        if self.fingerprint is not None and theirs is not None and theirs != self.fingerprint:
            raise StoreError(
                f"{path}: shard belongs to another zoo (spec_fingerprint {str(theirs)[:16]}..., "
                f"{fmt.MANIFEST} says {self.fingerprint[:16]}...); run `modelzoo verify`"
            )
        if self.model_ids is not None:
            ids = np.asarray(handle[fmt.W_MODEL_IDS][:], dtype=np.int64)
            if not np.array_equal(ids, self.model_ids[index]):
                raise damaged(
                    path,
                    f"its model ids {compact(ids.tolist())} are not the ones "
                    f"{fmt.MODELS_TABLE} places in it ({compact(self.model_ids[index].tolist())})",
                )

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
    (shard paths, rows, counts, one metrics row per model and stored epoch), so a damaged zoo
    fails here with one line, before any read. A writer commits by replacing the tables and then
    the manifest; a reader that lands in between (tables newer than the manifest, or files
    replaced while it read them) reads again, for up to ``COMMIT_WAIT`` seconds.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._plan: ArchitecturePlan | None = None
        deadline = time.monotonic() + COMMIT_WAIT
        while True:
            before = _signature(path)
            try:
                self._load(path)
                return
            except StoreError:
                changing = _signature(path) != before or _commit_in_progress(path)
                if not changing or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def _load(self, path: Path) -> None:
        self.manifest = manifest = fmt.read_manifest(path)
        where = path / fmt.MANIFEST
        _check_description(where, manifest)
        try:
            self.layout = tuple(
                ParameterSlot(
                    s["name"], tuple(int(d) for d in s["shape"]), int(s["offset"]),
                    bool(s.get("buffer", False)),
                )
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
        shard_paths = [s["path"] for s in manifest["shards"]]
        if len(set(shard_paths)) != len(shard_paths):
            raise StoreError(f"{where}: shards: a path is listed more than once")
        try:
            sizes = np.asarray([int(s["models"]) for s in manifest["shards"]], dtype=np.int64)
        except (TypeError, ValueError) as error:
            raise StoreError(f"{where}: shards: models must be a count ({error})") from None
        models = read_table(path, fmt.MODELS_TABLE, MODELS_COLUMNS)
        metrics = read_table(path, fmt.METRICS_TABLE, METRICS_COLUMNS)
        models, self.metrics, _ = committed_rows(path, models, metrics, shard_paths)
        self.models = models.sort_values("model_id", kind="stable").reset_index(drop=True)
        self.model_ids = self.models["model_id"].to_numpy(dtype=np.int64)
        models_path = path / fmt.MODELS_TABLE
        if np.unique(self.model_ids).size != self.model_ids.size:
            raise StoreError(f"{models_path}: model_id: values repeat")
        unknown = sorted(set(self.models["status"]) - set(STATUSES))
        if unknown:
            raise StoreError(
                f"{models_path}: status: unknown values {unknown[:5]} (expected one of "
                f"{', '.join(STATUSES)})"
            )
        shard_of = pd.Index(shard_paths).get_indexer(self.models["shard"])
        if np.any(shard_of < 0):
            bad = sorted(set(self.models["shard"][shard_of < 0]))
            raise StoreError(f"{models_path}: shard: {bad} are not listed in {fmt.MANIFEST}")
        self.shard_of = shard_of.astype(np.int64)
        self.row_of = self.models["row"].to_numpy(dtype=np.int64)
        if np.any(self.row_of < 0) or np.any(self.row_of >= sizes[self.shard_of]):
            raise StoreError(f"{models_path}: row: points outside its shard")
        if sizes.sum() != len(self.models):
            raise StoreError(
                f"{path}: the shards hold {sizes.sum()} models, "
                f"{fmt.MODELS_TABLE} lists {len(self.models)}"
            )
        expected = [np.full(int(n), -1, dtype=np.int64) for n in sizes]
        for shard, row, model_id in zip(self.shard_of, self.row_of, self.model_ids):
            if expected[shard][row] >= 0:
                raise StoreError(f"{models_path}: row: two models point at one shard row")
            expected[shard][row] = model_id
        self._check_metrics(path)
        self._check_shard_files(path, manifest["shards"])
        fingerprint = manifest.get("spec_fingerprint")
        self.reader = ShardReader(
            path,
            manifest["shards"],
            self.epochs.size,
            self.parameters,
            expected,
            fingerprint if isinstance(fingerprint, str) else None,
        )

    def _check_shard_files(self, path: Path, shards: Sequence[dict]) -> None:
        """A missing or truncated shard is found at open time, not at the first read of its
        weights."""
        for shard, problem in shard_problems(path, shards)[:1]:
            if problem == MISSING:
                raise StoreError(f"{shard}: shard listed in {fmt.MANIFEST} is missing; run "
                                 "`modelzoo verify`")  # fmt: skip
            raise damaged(shard, problem)

    def plan(self) -> ArchitecturePlan:
        """The architecture plan of the manifest's architecture and input, checked against the
        stored layout (a zoo whose layout is not its architecture's cannot be rebuilt)."""
        if self._plan is None:
            where = self.path / fmt.MANIFEST
            dataset = self.manifest["dataset"]
            name = self.manifest["architecture"]["name"]
            try:
                plan = plan_architecture(name, tuple(dataset["input_shape"]),
                                         int(dataset["num_classes"]))  # fmt: skip
            except ModelZooError as error:
                raise StoreError(f"{where}: architecture: {error}") from None
            problem = plan.check_layout(self.layout)
            if problem is not None:
                raise StoreError(f"{where}: layout is not that of {name!r} on "
                                 f"{dataset['input_shape']}: {problem}")  # fmt: skip
            self._plan = plan
        return self._plan

    def _check_metrics(self, path: Path) -> None:
        """One metrics row per (model, stored epoch), nothing else."""
        metrics = self.metrics
        pairs = metrics[["model_id", "epoch"]]
        if (
            len(metrics) != self.model_ids.size * self.epochs.size
            or pairs.duplicated().any()
            or not metrics["model_id"].isin(self.model_ids).all()
            or not metrics["epoch"].isin(self.epochs).all()
        ):
            raise StoreError(
                f"{path / fmt.METRICS_TABLE}: expected one row per model and stored epoch "
                f"({self.model_ids.size} x {self.epochs.size} = "
                f"{self.model_ids.size * self.epochs.size}), found {len(metrics)} rows "
                f"({int(pairs.duplicated().sum())} repeated); run `modelzoo verify`"
            )

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


def _check_description(where: Path, manifest: dict) -> None:
    """The dataset and architecture entries the Zoo API describes models with."""
    dataset, architecture = manifest["dataset"], manifest["architecture"]
    if not isinstance(architecture, dict) or not isinstance(architecture.get("name"), str):
        raise StoreError(f"{where}: architecture: expected {{name, parameters}}")
    shape = dataset.get("input_shape") if isinstance(dataset, dict) else None
    if (
        not isinstance(dataset, dict)
        or not isinstance(dataset.get("name"), str)
        or not isinstance(shape, list)
        or not all(isinstance(d, int) and d > 0 for d in shape)
        or not isinstance(dataset.get("num_classes"), int)
    ):
        raise StoreError(
            f"{where}: dataset: expected {{name, input_shape: [C, H, W], num_classes}}"
        )


def _signature(path: Path) -> tuple:
    """What changes when a writer commits: identity and size of the manifest and the tables."""
    out = []
    for name in (fmt.MANIFEST, fmt.MODELS_TABLE, fmt.METRICS_TABLE):
        try:
            stat = (path / name).stat()
            out.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _commit_in_progress(path: Path) -> bool:
    """Tables newer than the manifest: a writer is between its table and manifest replaces."""
    try:
        manifest = (path / fmt.MANIFEST).stat().st_mtime_ns
        return any(
            (path / name).stat().st_mtime_ns > manifest
            for name in (fmt.MODELS_TABLE, fmt.METRICS_TABLE)
        )
    except OSError:
        return False


def compact(values: list[int]) -> str:
    """'0..25' for a run of consecutive numbers, else the first few."""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
