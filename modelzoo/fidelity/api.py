"""``fidelity(zoo)``: the statistics the papers publish about their zoos, ours beside theirs.

The zoo is matched to its paper zoo by spec name (``published.ZOO_OF_SPEC``) or by ``paper=``.
Every statistic is computed whether or not the paper has a number for it; the table says which
table each paper number comes from, and ``difference`` is ours minus the paper's (in points for
percentages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelZooError
from ..probe.api import run_probe
from ..probe.data import DEFAULT_FRACTIONS, candidate_targets, load_samples, parse_epochs
from .published import PAPER_ZOOS, ZOO_OF_SPEC, Published
from .statistics import (
    FACTOR_TARGETS,
    GROUP_FACTORS,
    PROBE_TARGETS,
    accuracy_by_epoch,
    grouped_variance,
    pca_reconstruction,
    weight_variance,
)

MIN_TEST_MODELS = 10  # fewer test models than this: probe R^2 is a coin toss
COLUMNS = ["statistic", "kind", "features", "target", "epoch", "paper", "ours", "difference",
           "source"]  # fmt: skip


@dataclass
class FidelityReport:
    """The comparison table, the accuracy distribution per epoch, and notes."""

    zoo: str
    paper: Published | None
    table: pd.DataFrame  # COLUMNS
    accuracy: pd.DataFrame  # epoch, models, mean, std, min, q25, median, q75, max (fractions)
    states: pd.DataFrame  # model_id, epoch, test_acc of the ok models (for the plot)
    notes: list[str] = field(default_factory=list)

    def value(self, statistic: str) -> float:
        """Our number for ``statistic`` (the table's label), for scripts and tests."""
        rows = self.table[self.table["statistic"] == statistic]
        if rows.empty:
            raise KeyError(statistic)
        return float(rows["ours"].iloc[0])


def resolve_paper(zoo, paper: str | None) -> Published | None:
    """``paper`` by name ("none": no comparison), else the paper zoo of the zoo's spec name."""
    if paper is None:
        name = ZOO_OF_SPEC.get(str(zoo.manifest.get("spec", {}).get("name", zoo.name)))
        return PAPER_ZOOS.get(name) if name else None
    if paper.lower() == "none":
        return None
    key = {k.lower(): k for k in PAPER_ZOOS}.get(paper.lower())
    if key is None:
        raise ModelZooError(f"--paper: unknown paper zoo {paper!r}; choose one of: none, "
                            f"{', '.join(PAPER_ZOOS)}")  # fmt: skip
    return PAPER_ZOOS[key]


def _row(statistic, kind, ours, paper=None, features="", target="", epoch=None, source=""):
    paper_value = np.nan if paper is None else float(paper)
    return {"statistic": statistic, "kind": kind, "features": features, "target": target,
            "epoch": epoch, "paper": paper_value, "ours": float(ours),
            "difference": float(ours) - paper_value, "source": source if paper is not None else ""}  # fmt: skip


def _probe_rows(zoo, samples, published, epochs, fractions, split_seed, progress,
                notes) -> list[dict]:  # fmt: skip
    available = candidate_targets(samples.table)
    wanted = [t for t in (*PROBE_TARGETS, *FACTOR_TARGETS)
              if t in available or (t == "f1" and any(c.startswith("f1_") for c in available))]  # fmt: skip
    result = run_probe(zoo, ["W", "sW"], wanted, "linear", epochs, fractions=fractions,
                       split_seed=split_seed, progress=progress, samples=samples)  # fmt: skip
    notes += [n for n in result.notes  # hyperparameters a seed zoo keeps fixed are no finding
              if not any(n.startswith(f"skipped target {t}: constant") for t in FACTOR_TARGETS)]
    test = result.results[(result.results["split"] == "test")
                          & result.results["metric"].isin(["r2", "accuracy"])]  # fmt: skip
    rows = []
    source = published.source if published else ""
    for _, r in test.iterrows():
        metric = "R^2" if r["metric"] == "r2" else "accuracy"
        paper = published.probes.get((r["features"], r["target"])) if published else None
        rows.append(_row(f"{metric} {r['features']} -> {r['target']} (%)", "probe",
                         100 * r["value"], paper, r["features"], r["target"], source=source))  # fmt: skip
    return rows


def _accuracy_rows(accuracy: pd.DataFrame, metrics: pd.DataFrame,
                   published: Published | None) -> list[dict]:  # fmt: skip
    """Our accuracy figures at the epochs the paper reports (None: over all trained states)."""
    rows = []
    trained = metrics[(metrics["epoch"] >= 1) & np.isfinite(metrics["test_acc"].to_numpy(float))]
    wanted = dict(published.accuracy) if published else {}
    last = int(accuracy["epoch"].max()) if len(accuracy) else None
    for statistic in ("mean", "std", "min", "max"):
        wanted.setdefault((statistic, last), None)
    for (statistic, epoch), paper in wanted.items():
        if epoch is None:
            values = trained["test_acc"].to_numpy(float)
            where = "over all trained states"
        else:
            values = metrics.loc[metrics["epoch"] == epoch, "test_acc"].to_numpy(float)
            values = values[np.isfinite(values)]
            where = f"at epoch {epoch}"
        if len(values) == 0:
            continue
        ours = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}[statistic](values)
        rows.append(_row(f"test accuracy {statistic} {where} (%)", "accuracy", 100 * ours, paper,
                         target="test_acc", epoch=epoch,
                         source=published.source if published else ""))  # fmt: skip
    return rows


def fidelity(zoo, paper: str | None = None, epochs: str | Sequence[int] = "all",
             fractions: Sequence[float] = DEFAULT_FRACTIONS, split_seed: int = 0,
             progress: bool = True) -> FidelityReport:  # fmt: skip
    """Compute every statistic for ``zoo`` and put the paper zoo's published numbers beside them."""
    from ..zoo import Zoo, open_zoo

    zoo = zoo if isinstance(zoo, Zoo) else open_zoo(Path(zoo))
    published = resolve_paper(zoo, paper)
    notes: list[str] = []
    spec_name = str(zoo.manifest.get("spec", {}).get("name", zoo.name))
    if published is None and (paper is None or paper.lower() != "none"):
        notes.append(f"{zoo.name}: no published zoo to compare with (pass --paper; choose from "
                     f"{', '.join(PAPER_ZOOS)})")  # fmt: skip
    elif published is not None and ZOO_OF_SPEC.get(spec_name) != published.name:
        bundled = [s for s, p in ZOO_OF_SPEC.items() if p == published.name]
        notes.append(f"{zoo.name} (spec {spec_name}) is compared with {published.name}, the zoo of "
                     f"{', '.join(bundled) or 'no bundled spec'}: a different recipe")  # fmt: skip
    protocol = parse_epochs(epochs if isinstance(epochs, str) else ",".join(map(str, epochs)),
                            zoo.epochs)  # fmt: skip
    samples = load_samples(zoo, protocol, fractions, split_seed)
    test_models = samples.table.loc[samples.table["split"] == "test", "model_id"].nunique()
    if test_models < MIN_TEST_MODELS:
        notes.append(f"only {test_models} models in the test split: the probe numbers are noise "
                     f"at this size (the papers' zoos hold 150 or more)")  # fmt: skip
    rows = _probe_rows(zoo, samples, published, epochs, fractions, split_seed, progress, notes)

    groups = samples.table[[c for c in GROUP_FACTORS if c in samples.table.columns]]
    variances = {"VAR": weight_variance(samples.weights),
                 "VARc": grouped_variance(samples.weights, groups)}  # fmt: skip
    for name, ours in variances.items():
        paper_value = published.variance.get(name) if published else None
        rows.append(_row(name, "variance", ours, paper_value,
                         source=published.source if published else ""))  # fmt: skip

    ok = zoo.models.loc[zoo.models["status"] == "ok", "model_id"]
    metrics = zoo.metrics[zoo.metrics["model_id"].isin(ok)]
    accuracy = accuracy_by_epoch(metrics)
    rows += _accuracy_rows(accuracy, metrics, published)

    train, test = samples.rows("train"), samples.rows("test")
    for k, r2 in pca_reconstruction(samples.weights[train], samples.weights[test]).items():
        rows.append(_row(f"PCA-{k} reconstruction R^2, test split (%)", "compressibility",
                         100 * r2))  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    states = metrics[["model_id", "epoch", "test_acc"]].reset_index(drop=True)
    return FidelityReport(zoo.name, published, table, accuracy, states, notes)
