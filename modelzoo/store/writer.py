"""ZooWriter: the only code that writes a zoo, and the reason a killed run never leaves it broken.

Each finished task becomes one *sealed* shard: written whole under a temporary name, flushed,
renamed, never touched again. Then the tables and the manifest are replaced atomically (temporary
file + os.replace). The manifest is the commit point. Opening a zoo for writing recovers from any
interruption: temporary files are deleted, a sealed shard the manifest does not list yet is adopted
when it is intact and belongs to this spec (else deleted), and the tables are rebuilt from the
shards, which carry their own metrics. Rerunning the same command therefore trains exactly the
models that are missing.

One writer at a time: the writer takes the zoo's lock (:mod:`modelzoo.store.lock`) before it
touches anything, so a second ``modelzoo generate`` on the same zoo is refused at once instead of
training every model again. Committed shards are recovered first, so an unlisted shard holding
models the manifest already has (what a second writer left before the lock existed) is swept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import StoreError
from ..evaluation import SCALAR_METRICS
from ..spec import FACTOR_COLUMNS, Run, Spec
from ..spec.records import describe_inits
from ..train.result import STATUS_FAILED, RunResult
from . import format as fmt
from .faults import crash_point
from .lock import GUARD_SUFFIX, LOCK_FILE, WriterLock

LOCK_FILES = (LOCK_FILE, LOCK_FILE + GUARD_SUFFIX)  # the writer's own, never part of the zoo

FINAL_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "gap")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ShardBuilder:
    """One shard being written under its temporary name; sealed (renamed into place) by
    :meth:`finish`, never touched again after that.

    Weight rows arrive either all at once (:meth:`write_all`, what a task of small models
    returns) or one stored epoch at a time while the task trains (:meth:`put`, streamed from the
    engine: a task of large models never holds its whole history in memory). Rows that never
    arrived (failed models, epochs after a divergence, epochs beyond a run's own length) are NaN.
    """

    def __init__(self, path: Path, runs: Sequence[Run], epochs: Sequence[int], parameters: int,
                 fingerprint: str, zoo_name: str,
                 metric_names: Sequence[str] = SCALAR_METRICS) -> None:  # fmt: skip
        self.path, self.epochs = path, list(epochs)
        self.metric_names = tuple(metric_names)
        self.model_ids = sorted(run.model_id for run in runs)
        self.index = {model_id: i for i, model_id in enumerate(self.model_ids)}
        # each run's stored epochs on the zoo's epoch axis (runs of a grid over epochs differ)
        self.rows = {run.model_id: [self.epochs.index(e) for e in run.stored_epochs]
                     for run in runs}  # fmt: skip
        self.written = np.zeros((len(self.model_ids), len(self.epochs)), dtype=bool)
        e, p = len(self.epochs), int(parameters)
        chunks = (1, e, p) if e * p * 4 <= fmt.CHUNK_BYTES_LIMIT else (1, 1, p)
        self.tmp = path.with_name(path.name + fmt.TMP_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.h5 = h5py.File(self.tmp, "w")
        self.h5.attrs["format"] = fmt.FORMAT_NAME
        self.h5.attrs["format_version"] = fmt.FORMAT_VERSION
        self.h5.attrs["zoo"] = zoo_name
        self.h5.attrs["spec_fingerprint"] = fingerprint
        self.h5.attrs["epochs"] = np.asarray(self.epochs, dtype=np.int64)
        self.weights = self.h5.create_dataset(fmt.W_WEIGHTS, (len(self.model_ids), e, p),
                                              dtype=np.float32, chunks=chunks)  # fmt: skip

    def put(self, model_id: int, run_row: int, values: np.ndarray) -> None:
        """The weights of ``model_id`` at its ``run_row``-th stored epoch (other ids: ignored,
        e.g. a stored neighbour retrained with a missing model)."""
        i = self.index.get(int(model_id))
        if i is None:
            return
        row = self.rows[int(model_id)][run_row]
        self.weights[i, row] = np.asarray(values, dtype=np.float32)
        self.written[i, row] = True

    def write_all(self, results: Sequence[RunResult]) -> None:
        """Every result's whole weight history in one write (results with weights)."""
        block = np.full(self.weights.shape, np.nan, dtype=np.float32)
        for result in results:
            if result.weights is not None and int(result.model_id) in self.index:
                i = self.index[int(result.model_id)]
                block[i, self.rows[int(result.model_id)]] = result.weights
                self.written[i, self.rows[int(result.model_id)]] = True
        self.weights[...] = block

    def finish(self, results: Sequence[RunResult]) -> None:
        """Fill what never arrived with NaN, add the small arrays, flush, fsync and rename."""
        by_id = {int(r.model_id): r for r in results}
        if set(by_id) != set(self.model_ids):
            raise ValueError(f"shard {self.path.name}: results for {sorted(by_id)}, "
                             f"expected {self.model_ids}")  # fmt: skip
        nan = np.full(self.weights.shape[2], np.nan, dtype=np.float32)
        for model_id, i in self.index.items():
            failed = by_id[model_id].status == STATUS_FAILED
            for row in range(len(self.epochs)):
                if failed or not self.written[i, row]:
                    self.weights[i, row] = nan
        crash_point("mid-shard")
        ordered = [by_id[model_id] for model_id in self.model_ids]
        rows = [self.rows[r.model_id] for r in ordered]
        h5 = self.h5
        h5.create_dataset(fmt.W_MODEL_IDS, data=np.array(self.model_ids, np.int64))
        h5.create_dataset(fmt.W_RUN_KEYS, data=np.array([r.run_key for r in ordered], dtype="S16"))
        names = self.metric_names
        metrics = np.full((len(ordered), len(self.epochs), len(names)), np.nan)
        f1 = np.full((len(ordered), len(self.epochs), ordered[0].f1.shape[1]), np.nan, np.float32)
        for i, (result, where) in enumerate(zip(ordered, rows)):
            metrics[i, where] = np.stack([result.metrics[k] for k in names], axis=1)
            f1[i, where] = result.f1
        h5.create_dataset(fmt.W_METRICS, data=metrics)
        h5[fmt.W_METRICS].attrs["names"] = np.array(names, dtype="S")
        h5.create_dataset(fmt.W_F1, data=f1)
        h5.create_dataset(fmt.W_STATUS, data=np.array([r.status for r in ordered], dtype="S16"))
        h5.create_dataset(fmt.W_ERRORS, data=[r.error.encode() for r in ordered],
                          dtype=h5py.string_dtype("utf-8"))  # fmt: skip
        h5.create_dataset(fmt.W_DIVERGED,
                          data=np.array([r.diverged_epoch for r in ordered], np.int64))  # fmt: skip
        h5.flush()
        h5.close()
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.path)
        fmt.fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop the unfinished file (the task failed as a whole or the run was interrupted)."""
        with contextlib.suppress(Exception):
            self.h5.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class ShardContents:
    """The small (non-weight) arrays of one shard, enough to rebuild both tables."""

    def __init__(self, path: Path) -> None:
        try:
            with h5py.File(path, "r") as h5:
                self.fingerprint = str(h5.attrs["spec_fingerprint"])
                self.model_ids = h5[fmt.W_MODEL_IDS][:]
                self.run_keys = [k.decode() for k in h5[fmt.W_RUN_KEYS][:]]
                self.metric_names = [n.decode() for n in h5[fmt.W_METRICS].attrs["names"]]
                self.metrics = h5[fmt.W_METRICS][:]
                self.f1 = h5[fmt.W_F1][:]
                self.status = [s.decode() for s in h5[fmt.W_STATUS][:]]
                errors = h5[fmt.W_ERRORS][:]
                self.errors = [e.decode() if isinstance(e, bytes) else str(e) for e in errors]
                self.diverged = h5[fmt.W_DIVERGED][:]
                self.weights_shape = h5[fmt.W_WEIGHTS].shape
        except (OSError, KeyError, ValueError) as error:
            raise StoreError(f"{path}: damaged shard: {error}") from None


def build_tables(
    shards: Sequence[tuple[str, ShardContents]], runs_by_id: dict[int, Run], epochs: Sequence[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """models and metrics tables from shard contents (sorted by model id, then epoch).

    Vectorised per shard: a zoo is committed after every task, so this runs often."""
    model_rows, metric_frames = [], []
    epochs_array = np.asarray(epochs, dtype=np.int64)
    for shard_path, contents in shards:
        names = contents.metric_names
        ids = contents.model_ids.astype(np.int64)
        m, e = contents.metrics.shape[:2]
        finite = np.isfinite(contents.metrics[:, :, names.index("test_acc")])  # [m, E]
        has_any = finite.any(axis=1)
        last = np.where(has_any, e - 1 - np.argmax(finite[:, ::-1], axis=1), 0)
        final = contents.metrics[np.arange(m), last]  # [m, n_metrics]
        for row, model_id in enumerate(ids.tolist()):
            run = runs_by_id[model_id]
            record = {"model_id": model_id, "run_key": contents.run_keys[row]}
            record.update(run.columns())
            record.update(status=contents.status[row], error=contents.errors[row],
                          diverged_epoch=int(contents.diverged[row]), shard=shard_path, row=row,
                          final_epoch=int(epochs_array[last[row]]) if has_any[row] else -1)  # fmt: skip
            for name in FINAL_METRICS:
                record[name] = float(final[row, names.index(name)]) if has_any[row] else np.nan
            model_rows.append(record)
        frame = pd.DataFrame(contents.metrics.reshape(m * e, -1), columns=names)
        frame.insert(0, "epoch", np.tile(epochs_array, m))
        frame.insert(0, "model_id", np.repeat(ids, e))
        f1 = contents.f1.reshape(m * e, -1).astype(np.float64)
        frame = pd.concat(
            [frame, pd.DataFrame(f1, columns=[f"f1_{k}" for k in range(f1.shape[1])])], axis=1
        )
        metric_frames.append(frame)
    models = pd.DataFrame(model_rows)
    if models.empty:
        models = pd.DataFrame(columns=["model_id", "run_key", *FACTOR_COLUMNS, "status", "error"])
    else:
        models = models.sort_values("model_id", kind="stable").reset_index(drop=True)
    metrics = (pd.concat(metric_frames, ignore_index=True) if metric_frames
               else pd.DataFrame(columns=["model_id", "epoch", *SCALAR_METRICS]))  # fmt: skip
    if not metrics.empty:
        metrics = metrics.sort_values(["model_id", "epoch"], kind="stable").reset_index(drop=True)
    return models, metrics


def _entries(folder: Path) -> Iterator[Path]:
    return folder.iterdir() if folder.is_dir() else iter(())


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    fmt.atomic_write_bytes(path, sink.getvalue().to_pybytes())


class ZooWriter:
    """Creates or resumes ``zoo_dir`` for ``spec``; ``add`` seals one task's results into the zoo."""

    def __init__(
        self,
        zoo_dir: Path,
        spec: Spec,
        runs: Sequence[Run],
        dataset: dict,
        layout: list[dict],
        restart: bool = False,
        grouping: dict | None = None,
        metric_names: Sequence[str] = SCALAR_METRICS,
    ) -> None:
        """``metric_names``: the per-epoch scalars every result carries (``evaluation``'s by
        default; derived zoos such as sparse twins add their own, e.g. ``sparsity``)."""
        self.dir = Path(zoo_dir)
        self.metric_names = tuple(metric_names)
        self.grouping = grouping
        self.spec = spec
        self.runs_by_id = {r.model_id: r for r in runs}
        self.epochs = list(spec.stored_epochs())
        self.dataset = dataset
        self.layout = layout
        self.shards: list[tuple[str, ShardContents]] = []
        self.shard_meta: list[dict] = []
        self.created = _now()
        if self.dir.exists() and not self.dir.is_dir():
            raise StoreError(f"{self.dir}: exists and is not a folder")
        foreign = not (self.dir / fmt.MANIFEST).exists() and any(
            p.name not in (fmt.SHARD_DIR, *LOCK_FILES) for p in _entries(self.dir)
        )
        if foreign:  # checked before the lock is taken: nothing is written into such a folder
            raise StoreError(f"{self.dir}: refusing to delete a folder that is not a zoo" if restart
                             else f"{self.dir}: folder exists and is not a zoo; choose another "
                             "--store")  # fmt: skip
        # one writer per zoo, refused at once (pid, host, since when); a dead one's lock is taken
        # over. Taking it creates the folder; close() removes it again if nothing was written.
        self._lock = WriterLock.acquire(self.dir)
        self._release = weakref.finalize(self, self._lock.release)  # also at exit, if not closed
        try:
            if restart:
                for entry in _entries(self.dir):
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    elif entry.name not in LOCK_FILES:
                        entry.unlink()
            if (self.dir / fmt.MANIFEST).exists():
                self._resume()
            if any(p.name not in LOCK_FILES for p in _entries(self.dir)):
                # a zoo, or the shards of one killed before its first commit
                self._recover_shards()
                self._commit()
            # else: nothing but the lock is created until the first results arrive, so a run
            # that fails before training anything (missing data, bad device) leaves no trace
        except BaseException:
            self.close()
            raise

    def _ensure_folder(self) -> None:
        (self.dir / fmt.SHARD_DIR).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ recovery
    def _resume(self) -> None:
        manifest = fmt.read_manifest(self.dir)
        if manifest.get("spec_fingerprint") != self.spec.fingerprint:
            raise StoreError(
                f"{self.dir}: this zoo was generated from a different spec (settings or --engine changed); "
                "pass --restart to delete it and start over, or choose another --store"
            )
        self.created = manifest.get("created", self.created)
        self.shard_meta = [s for s in manifest["shards"]]

    def _recover_shards(self) -> None:
        shard_dir = self.dir / fmt.SHARD_DIR
        for leftover in shard_dir.glob("*" + fmt.TMP_SUFFIX):
            leftover.unlink()
        for leftover in self.dir.glob("*" + fmt.TMP_SUFFIX):
            leftover.unlink()
        listed = {s["path"]: s for s in self.shard_meta}
        seen_ids: set[int] = set()
        kept_meta = []
        # committed shards first: an unlisted shard whose models a listed one already holds (left
        # by a second writer, or by an older modelzoo without the lock) is an orphan to sweep,
        # whatever the order of the names
        on_disk = sorted(shard_dir.glob("*.h5"))
        for path in sorted(on_disk, key=lambda p: f"{fmt.SHARD_DIR}/{p.name}" not in listed):
            relative = f"{fmt.SHARD_DIR}/{path.name}"
            meta = listed.get(relative)
            try:
                contents = ShardContents(path)
            except StoreError:
                if meta is not None:
                    raise
                path.unlink()  # an unlisted, unreadable shard: a write that never committed
                continue
            ids = contents.model_ids.tolist()
            belongs = contents.fingerprint == self.spec.fingerprint and all(
                i in self.runs_by_id and self.runs_by_id[i].key == k
                for i, k in zip(ids, contents.run_keys)
            )
            if not belongs or seen_ids.intersection(ids):
                if meta is not None:
                    raise StoreError(f"{path}: shard does not match this zoo's spec")
                path.unlink()
                continue
            seen_ids.update(ids)
            if meta is None:
                meta = {"path": relative, "sha256": fmt.sha256_file(path), "models": len(ids),
                        "bytes": path.stat().st_size}  # fmt: skip
            kept_meta.append(meta)
            self.shards.append((relative, contents))
        missing = set(listed) - {m["path"] for m in kept_meta}
        if missing:
            raise StoreError(
                f"{self.dir}: shards listed in the manifest are missing: {sorted(missing)}"
            )
        self.shard_meta = kept_meta

    def close(self) -> None:
        """Done writing: release the writer lock (idempotent; the zoo is valid either way)."""
        self._release()

    def __enter__(self) -> ZooWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def done_ids(self) -> set[int]:
        return {int(i) for _, contents in self.shards for i in contents.model_ids}

    def begin(self, runs: Sequence[Run]) -> ShardBuilder | None:
        """A shard for the runs not stored yet (None when all are), to stream weights into while
        a task trains; pass it to :meth:`add` with the task's results."""
        fresh = [run for run in runs if run.model_id not in self.done_ids()]
        if not fresh:
            return None
        self._ensure_folder()
        relative = fmt.shard_name(min(run.model_id for run in fresh))
        if (self.dir / relative).exists():  # an adopted orphan holds that name; ids never overlap
            relative = relative.replace(".h5", f"-{len(self.shards)}.h5")
        parameters = sum(int(np.prod(s["shape"])) for s in self.layout)
        return ShardBuilder(self.dir / relative, fresh, self.epochs, parameters,
                            self.spec.fingerprint, self.spec.name, self.metric_names)  # fmt: skip

    def add(self, results: Sequence[RunResult], builder: ShardBuilder | None = None) -> None:
        """Seal ``results`` (one task) as a shard, then commit tables and manifest. With a
        ``builder`` (from :meth:`begin`) the weights were streamed into it already."""
        done = self.done_ids()
        fresh = [r for r in results if r.model_id not in done]
        if not fresh:
            if builder is not None:
                builder.abort()
            return
        if builder is None:
            builder = self.begin([self.runs_by_id[r.model_id] for r in fresh])
            builder.write_all(fresh)
        try:
            builder.finish(fresh)
        except BaseException:
            builder.abort()
            raise
        crash_point("after-shard")
        path = builder.path
        relative = f"{fmt.SHARD_DIR}/{path.name}"
        self.shards.append((relative, ShardContents(path)))
        self.shard_meta.append({"path": relative, "sha256": fmt.sha256_file(path),
                                "models": len(fresh), "bytes": path.stat().st_size})  # fmt: skip
        self._commit()

    def counts(self) -> dict[str, int]:
        statuses = [s for _, contents in self.shards for s in contents.status]
        return {k: statuses.count(k) for k in ("ok", "diverged", "failed")}

    def _commit(self) -> None:
        models, metrics = build_tables(self.shards, self.runs_by_id, self.epochs)
        _write_parquet(self.dir / fmt.MODELS_TABLE, models)
        crash_point("between-tables")
        _write_parquet(self.dir / fmt.METRICS_TABLE, metrics)
        crash_point("before-manifest")
        fmt.atomic_write_json(self.dir / fmt.MANIFEST, self.manifest(models))

    def manifest(self, models: pd.DataFrame) -> dict:
        status = models["status"].value_counts().to_dict() if not models.empty else {}
        return {
            "format": fmt.FORMAT_NAME,
            "format_version": fmt.FORMAT_VERSION,
            "name": self.spec.name,
            "library_version": __version__,
            "created": self.created,
            "updated": _now(),
            "spec_fingerprint": self.spec.fingerprint,
            "spec": self.spec.resolved,
            "dataset": self.dataset,
            "architecture": {
                "name": self.spec.resolved["architecture"]["name"],
                "parameters": sum(int(np.prod(s["shape"])) for s in self.layout),
            },
            "layout": self.layout,
            "init": describe_inits(r.training.get("init") for r in self.runs_by_id.values()),
            "epochs": self.epochs,
            "metrics": list(self.metric_names),
            "counts": {
                "planned": len(self.runs_by_id),
                "done": len(models),
                **{k: int(status.get(k, 0)) for k in ("ok", "diverged", "failed")},
            },
            "grouping": self.grouping,
            "shards": self.shard_meta,
            "tables": {"models": fmt.MODELS_TABLE, "metrics": fmt.METRICS_TABLE},
        }
