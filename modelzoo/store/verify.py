"""``modelzoo verify``: check every byte and every cross-reference of a zoo, and name what is wrong.

Checks, in order: the manifest (format, version, keys, layout, paths inside the folder); each shard
(present, size, sha256, opens, datasets and shapes against layout and epochs, model ids); the two
tables (readable, columns, model ids, shard/row pointers, status, metrics against the shards);
the manifest's counts. Problems are collected, not raised, so one run lists all damage.

Exit codes of the command: 0 intact, 1 damaged, 2 bad input (not a zoo, or a format version this
modelzoo cannot read). Files that are not part of the zoo's record (``normalization.json``,
``README.md``, ...) are not checked; unlisted shards are reported as notes. A published zoo
(folder with ``SHA256SUMS``, or an archive of one) has every file checked against ``SHA256SUMS``
as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import StoreError
from . import format as fmt
from .published import SUMS_FILE, check_sums, resolve_zoo
from .reader import (
    METRICS_COLUMNS,
    MODELS_COLUMNS,
    _check_description,
    committed_rows,
    read_table,
)

_ADVICE = "; run `modelzoo verify`"


@dataclass
class VerifyReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shards: int = 0
    models: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _ShardFacts:
    ids: np.ndarray
    status: list[str]
    metrics: np.ndarray
    names: list[str]
    f1: np.ndarray  # [models, epochs, classes]


def verify_zoo(path: str | Path) -> VerifyReport:
    """Check the zoo folder (or archive) ``path``; raises StoreError only when it is not a zoo."""
    path = resolve_zoo(path)
    report = VerifyReport(path)
    _check_is_zoo(path)
    try:
        manifest = fmt.read_manifest(path)
    except StoreError as error:
        report.problems.append(str(error))
        return report
    parameters, epochs = _check_layout(manifest, report)
    try:
        _check_description(path / fmt.MANIFEST, manifest)
    except StoreError as error:
        report.problems.append(str(error))
    facts: dict[str, _ShardFacts] = {}
    seen: set[int] = set()
    paths = [entry["path"] for entry in manifest["shards"]]
    for repeated_path in sorted({p for p in paths if paths.count(p) > 1}):
        report.problems.append(f"{fmt.MANIFEST}: shards: {repeated_path} is listed more than once")
    fingerprint = manifest.get("spec_fingerprint")
    for entry in manifest["shards"]:
        shard = _check_shard(path, entry, epochs, parameters, fingerprint, report)
        if shard is not None:
            repeated = seen.intersection(shard.ids.tolist())
            if repeated:
                report.problems.append(
                    f"{entry['path']}: model ids {sorted(repeated)[:5]} also in another shard"
                )
            seen.update(shard.ids.tolist())
            facts[entry["path"]] = shard
    report.shards = len(manifest["shards"])
    listed = {Path(s["path"]).name for s in manifest["shards"]}
    for stray in sorted((path / fmt.SHARD_DIR).glob("*.h5")):
        if stray.name not in listed:
            report.notes.append(
                f"{fmt.SHARD_DIR}/{stray.name}: not listed in {fmt.MANIFEST} (ignored)"
            )
    _check_tables(path, manifest, facts, epochs, report)
    if (path / SUMS_FILE).is_file():
        problems, notes = check_sums(path)
        report.problems += problems
        report.notes += notes
    return report


def _check_is_zoo(path: Path) -> None:
    if not path.is_dir() or not (path / fmt.MANIFEST).is_file():
        fmt.read_manifest(path)  # raises the precise "not a zoo" error
    try:
        version = json.loads((path / fmt.MANIFEST).read_text(encoding="utf-8")).get(
            "format_version"
        )
    except (OSError, ValueError, AttributeError):
        return  # unreadable: reported as damage by read_manifest
    if isinstance(version, int) and version > fmt.FORMAT_VERSION:
        fmt.read_manifest(path)  # raises "format_version: expected ..., upgrade modelzoo"


def _check_layout(manifest: dict, report: VerifyReport) -> tuple[int, int]:
    offset = 0
    try:
        for slot in manifest["layout"]:
            if int(slot["offset"]) != offset:
                report.problems.append(
                    f"{fmt.MANIFEST}: layout: {slot['name']} at offset {slot['offset']}, "
                    f"expected {offset}"
                )
            offset += int(np.prod(slot["shape"]))
        epochs = len(manifest["epochs"])
    except (KeyError, TypeError, ValueError) as error:
        report.problems.append(f"{fmt.MANIFEST}: layout/epochs: malformed ({error})")
        return -1, -1
    architecture = manifest.get("architecture")
    declared = architecture.get("parameters") if isinstance(architecture, dict) else None
    if declared is not None and declared != offset:
        report.problems.append(
            f"{fmt.MANIFEST}: architecture.parameters is {declared}, the layout sums to {offset}"
        )
    return offset, epochs


def _check_shard(
    zoo: Path,
    entry: dict,
    epochs: int,
    parameters: int,
    fingerprint: object,
    report: VerifyReport,
) -> _ShardFacts | None:
    name = entry["path"]
    target = zoo / name
    if not target.is_file():
        report.problems.append(f"{name}: shard is missing")
        return None
    size = target.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        report.problems.append(
            f"{name}: {size} bytes, the manifest says {entry['bytes']} (truncated or extended)"
        )
    digest = fmt.sha256_file(target)
    if digest != entry["sha256"]:
        report.problems.append(
            f"{name}: sha256 mismatch (content changed or damaged): expected "
            f"{entry['sha256'][:16]}..., got {digest[:16]}..."
        )
    try:
        with h5py.File(target, "r") as h5:
            weights = h5[fmt.W_WEIGHTS]
            expected = (_count(entry["models"]), epochs, parameters)
            if weights.shape != expected or weights.dtype != np.float32:
                report.problems.append(
                    f"{name}: weights are {weights.dtype} {weights.shape}, "
                    f"expected float32 {expected}"
                )
            theirs = h5.attrs.get("spec_fingerprint")
            theirs = theirs.decode(errors="replace") if isinstance(theirs, bytes) else theirs
            if isinstance(fingerprint, str) and theirs is not None and theirs != fingerprint:
                report.problems.append(
                    f"{name}: shard belongs to another zoo (spec_fingerprint "
                    f"{str(theirs)[:16]}..., {fmt.MANIFEST} says {fingerprint[:16]}...)"
                )
            stored_epochs = np.asarray(h5.attrs.get("epochs", []))
            if stored_epochs.size != epochs:
                report.problems.append(
                    f"{name}: attrs.epochs lists {stored_epochs.size} epochs, expected {epochs}"
                )
            ids = h5[fmt.W_MODEL_IDS][:]
            status = [s.decode() for s in h5[fmt.W_STATUS][:]]
            metrics = h5[fmt.W_METRICS][:]
            f1 = np.asarray(h5[fmt.W_F1][:], dtype=np.float64)
            names = [n.decode() for n in h5[fmt.W_METRICS].attrs["names"]]
            for key in (fmt.W_RUN_KEYS, fmt.W_F1, fmt.W_ERRORS, fmt.W_DIVERGED):
                if h5[key].shape[0] != ids.size:
                    report.problems.append(
                        f"{name}: {key} has {h5[key].shape[0]} rows, expected {ids.size}"
                    )
            weights.read_direct(np.empty(weights.shape, np.float32))  # every chunk must decode
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as error:
        report.problems.append(f"{name}: HDF5 cannot read the shard: {error}")
        return None
    try:
        listed = int(entry["models"])
    except (TypeError, ValueError):
        report.problems.append(f"{name}: the manifest's models {entry['models']!r} is not a count")
        return None
    if ids.size != listed or np.unique(ids).size != ids.size:
        report.problems.append(
            f"{name}: {ids.size} model ids ({np.unique(ids).size} distinct), "
            f"the manifest says {entry['models']}"
        )
    return _ShardFacts(ids, status, metrics, names, f1)


def _count(value: object) -> object:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return value


def _check_tables(
    zoo: Path, manifest: dict, facts: dict[str, _ShardFacts], epochs: int, report: VerifyReport
) -> None:
    tables = []
    for name, columns in ((fmt.MODELS_TABLE, MODELS_COLUMNS), (fmt.METRICS_TABLE, METRICS_COLUMNS)):
        try:
            tables.append(read_table(zoo, name, columns))
        except StoreError as error:
            report.problems.append(str(error).removesuffix(_ADVICE))
    if len(tables) < 2:
        return
    models, metrics, pending = committed_rows(zoo, *tables, [s["path"] for s in manifest["shards"]])
    for shard in pending:
        report.notes.append(
            f"{fmt.MODELS_TABLE}: rows of {shard} are not committed yet (an interrupted run; "
            "`modelzoo generate` finishes it)"
        )
    report.models = len(models)
    if models["model_id"].duplicated().any():
        report.problems.append(f"{fmt.MODELS_TABLE}: model_id values repeat")
    shard_ids = {int(i) for f in facts.values() for i in f.ids}
    table_ids = set(models["model_id"].astype(int))
    if facts and len(facts) == len(manifest["shards"]) and shard_ids != table_ids:
        report.problems.append(
            f"{fmt.MODELS_TABLE}: model ids differ from the shards' "
            f"(only in table: {sorted(table_ids - shard_ids)[:5]}, "
            f"only in shards: {sorted(shard_ids - table_ids)[:5]})"
        )
    bad_rows = []
    for model_id, shard, row, status in models[["model_id", "shard", "row", "status"]].itertuples(
        index=False
    ):
        fact = facts.get(shard)
        if fact is None:
            if shard not in {s["path"] for s in manifest["shards"]}:
                bad_rows.append(f"model {model_id}: shard {shard!r} not in {fmt.MANIFEST}")
            continue
        if not 0 <= row < fact.ids.size or fact.ids[row] != model_id or fact.status[row] != status:
            bad_rows.append(f"model {model_id}: {shard} row {row} does not hold it (or its status)")
    report.problems += [f"{fmt.MODELS_TABLE}: {line}" for line in bad_rows[:10]]
    if len(metrics) != len(models) * epochs:
        report.problems.append(
            f"{fmt.METRICS_TABLE}: {len(metrics)} rows, expected {len(models)} models x "
            f"{epochs} epochs = {len(models) * epochs}"
        )
    else:
        _compare_metrics(models, metrics, facts, report)
    counts = manifest.get("counts", {})
    status = models["status"].value_counts().to_dict()
    expected = {
        "done": len(models),
        **{k: int(status.get(k, 0)) for k in ("ok", "diverged", "failed")},
    }
    for key, value in expected.items():
        if key in counts and counts[key] != value:
            report.problems.append(
                f"{fmt.MANIFEST}: counts.{key} is {counts[key]}, the tables say {value}"
            )


def _compare_metrics(
    models: pd.DataFrame, metrics: pd.DataFrame, facts: dict[str, _ShardFacts], report: VerifyReport
) -> None:
    """The metrics table must repeat, value for value, what the shards recorded."""
    table = metrics.sort_values(["model_id", "epoch"])
    classes = max((fact.f1.shape[2] for fact in facts.values()), default=0)
    expected = {n for fact in facts.values() for n in fact.names} | {
        f"f1_{k}" for k in range(classes)
    }
    absent = sorted(expected - set(table.columns))
    if absent:
        report.problems.append(f"{fmt.METRICS_TABLE}: columns {absent} are missing")
    for shard, fact in facts.items():
        names = [n for n in fact.names if n in table.columns]
        rows = table[table["model_id"].isin(fact.ids)]
        if len(rows) != fact.metrics.shape[0] * fact.metrics.shape[1]:
            report.problems.append(f"{fmt.METRICS_TABLE}: rows for {shard} are missing")
            continue
        order = np.argsort(fact.ids)
        stored = fact.metrics[order][:, :, [fact.names.index(n) for n in names]].reshape(
            -1, len(names)
        )
        if not np.allclose(
            rows[names].to_numpy(dtype=np.float64), stored, rtol=0, atol=0, equal_nan=True
        ):
            report.problems.append(
                f"{fmt.METRICS_TABLE}: values differ from those recorded in {shard}"
            )
        f1_names = [f"f1_{k}" for k in range(fact.f1.shape[2]) if f"f1_{k}" in table.columns]
        f1 = fact.f1[order].reshape(-1, fact.f1.shape[2])[:, [int(n[3:]) for n in f1_names]]
        if not np.allclose(
            rows[f1_names].to_numpy(dtype=np.float64), f1, rtol=0, atol=0, equal_nan=True
        ):
            report.problems.append(
                f"{fmt.METRICS_TABLE}: f1 values differ from those recorded in {shard}"
            )
