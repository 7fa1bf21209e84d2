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

import dataclasses
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
from ..train.result import RunResult
from . import format as fmt
from .faults import crash_point
from .lock import GUARD_SUFFIX, LOCK_FILE, WriterLock

LOCK_FILES = (LOCK_FILE, LOCK_FILE + GUARD_SUFFIX)  # the writer's own, never part of the zoo

FINAL_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "gap")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_shard(path: Path, results: Sequence[RunResult], epochs: Sequence[int], fingerprint: str,
                zoo_name: str) -> None:  # fmt: skip
    """Write one shard whole under a temporary name, flush, and rename it into place (sealed)."""
    results = sorted(results, key=lambda r: r.model_id)
    weights = np.stack([r.weights for r in results]).astype(np.float32, copy=False)
    _, e, p = weights.shape
    chunks = (1, e, p) if e * p * 4 <= fmt.CHUNK_BYTES_LIMIT else (1, 1, p)
    tmp = path.with_name(path.name + fmt.TMP_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = fmt.FORMAT_NAME
        h5.attrs["format_version"] = fmt.FORMAT_VERSION
        h5.attrs["zoo"] = zoo_name
        h5.attrs["spec_fingerprint"] = fingerprint
        h5.attrs["epochs"] = np.asarray(epochs, dtype=np.int64)
        h5.create_dataset(fmt.W_WEIGHTS, data=weights, chunks=chunks)
        crash_point("mid-shard")
        h5.create_dataset(fmt.W_MODEL_IDS, data=np.array([r.model_id for r in results], np.int64))
        h5.create_dataset(fmt.W_RUN_KEYS, data=np.array([r.run_key for r in results], dtype="S16"))
        metrics = np.stack(
            [np.stack([r.metrics[k] for k in SCALAR_METRICS], axis=1) for r in results]
        )
        h5.create_dataset(fmt.W_METRICS, data=metrics.astype(np.float64))
        h5[fmt.W_METRICS].attrs["names"] = np.array(SCALAR_METRICS, dtype="S")
        h5.create_dataset(fmt.W_F1, data=np.stack([r.f1 for r in results]).astype(np.float32))
        h5.create_dataset(fmt.W_STATUS, data=np.array([r.status for r in results], dtype="S16"))
        h5.create_dataset(fmt.W_ERRORS, data=[r.error.encode() for r in results],
                          dtype=h5py.string_dtype("utf-8"))  # fmt: skip
        h5.create_dataset(
            fmt.W_DIVERGED, data=np.array([r.diverged_epoch for r in results], np.int64)
        )
        h5.flush()
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fmt.fsync_dir(path.parent)


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
    ) -> None:
        self.dir = Path(zoo_dir)
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

    def add(self, results: Sequence[RunResult]) -> None:
        """Seal ``results`` (one task) as a shard, then commit tables and manifest."""
        if not results:
            return
        done = self.done_ids()
        fresh = [r for r in results if r.model_id not in done]
        if not fresh:
            return
        fresh = [self._on_zoo_axis(r) for r in fresh]
        self._ensure_folder()
        relative = fmt.shard_name(min(r.model_id for r in fresh))
        path = self.dir / relative
        if path.exists():  # an adopted orphan holds that name; keep both, ids never overlap
            relative = relative.replace(".h5", f"-{len(self.shards)}.h5")
            path = self.dir / relative
        write_shard(path, fresh, self.epochs, self.spec.fingerprint, self.spec.name)
        crash_point("after-shard")
        self.shards.append((relative, ShardContents(path)))
        self.shard_meta.append({"path": relative, "sha256": fmt.sha256_file(path),
                                "models": len(fresh), "bytes": path.stat().st_size})  # fmt: skip
        self._commit()

    def _on_zoo_axis(self, result: RunResult) -> RunResult:
        """Place a run's stored epochs on the zoo's epoch axis (NaN where it has none)."""
        own = list(self.runs_by_id[result.model_id].stored_epochs)
        if own == self.epochs:
            return result
        rows = [self.epochs.index(e) for e in own]
        weights = np.full((len(self.epochs), result.weights.shape[1]), np.nan, np.float32)
        weights[rows] = result.weights
        f1 = np.full((len(self.epochs), result.f1.shape[1]), np.nan, np.float32)
        f1[rows] = result.f1
        metrics = {}
        for name, values in result.metrics.items():
            metrics[name] = np.full(len(self.epochs), np.nan)
            metrics[name][rows] = values
        return dataclasses.replace(result, weights=weights, f1=f1, metrics=metrics)

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
            "epochs": self.epochs,
            "metrics": list(SCALAR_METRICS),
            "counts": {
                "planned": len(self.runs_by_id),
                "done": len(models),
                **{k: int(status.get(k, 0)) for k in ("ok", "diverged", "failed")},
            },
            "grouping": self.grouping,
            "shards": self.shard_meta,
            "tables": {"models": fmt.MODELS_TABLE, "metrics": fmt.METRICS_TABLE},
        }
