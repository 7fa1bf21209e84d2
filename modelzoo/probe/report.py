"""What ``modelzoo probe`` writes: results.csv (long), results.md (the papers' layouts), PNGs.

results.md holds seed 001's Table 5 layout (targets x feature sets, test R^2 in %, accuracy in %
for categorical targets), the metanetwork papers' Kendall's tau table, and, with OOD zoos, seed
001's Table 7 layout (Kendall's tau, trained-on zoo x evaluated-on zoo and feature set). Everything
is written into a temporary sibling folder and renamed into place at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..outdir import claimed, new_folder
from .api import ProbeResult


def _table(results: pd.DataFrame, metric: str, split: str, scale: float) -> pd.DataFrame:
    picked = results[(results["metric"] == metric) & (results["split"] == split)]
    if picked.empty:
        return pd.DataFrame()
    order_t = list(dict.fromkeys(picked["target"]))
    order_f = list(dict.fromkeys(picked["features"]))
    wide = picked.pivot_table(index="target", columns="features", values="value", aggfunc="first")
    return wide.reindex(index=order_t, columns=order_f) * scale


def _markdown(wide: pd.DataFrame, digits: int) -> str:
    header = "| target | " + " | ".join(wide.columns) + " |"
    lines = [header, "|" + " --- |" * (len(wide.columns) + 1)]
    for target, row in wide.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in row]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: ProbeResult, zoo_name: str, settings: str) -> str:
    """results.md: the tables, then the notes."""
    results = result.results
    probe = ", ".join(dict.fromkeys(results["probe"]))
    parts = [f"# Probe results: {zoo_name}", "", f"{settings}; probe: {probe}.", ""]
    r2 = _table(results, "r2", "test", 100.0)
    if not r2.empty:
        parts += [
            "## R^2 in % on the test split (seed 001, Table 5 layout)",
            "",
            _markdown(r2, 1),
            "",
        ]
    tau = _table(results, "kendall_tau", "test", 1.0)
    if not tau.empty:
        parts += [
            "## Kendall's tau on the test split (metanetwork papers)",
            "",
            _markdown(tau, 3),
            "",
        ]
    acc = _table(results, "accuracy", "test", 100.0)
    if not acc.empty:
        parts += [
            "## Accuracy in % on the test split (categorical targets)",
            "",
            _markdown(acc, 1),
            "",
        ]
    ood = sorted({s for s in results["split"] if s.startswith("ood:")})
    if ood:
        parts += [f"## Out of distribution: Kendall's tau and R^2 (seed 001, Table 7 layout; trained on "
                  f"{zoo_name}, scored on each zoo's test split)", ""]  # fmt: skip
        continuous = results[results["metric"] == "kendall_tau"]
        for target in dict.fromkeys(continuous["target"]):
            one = results[results["target"] == target]
            features = list(dict.fromkeys(one["features"]))
            columns = [f"{zoo_name if split == 'test' else split.removeprefix('ood:')} {name}"
                       for split in ["test", *ood] for name in features]  # fmt: skip
            lines = [f"**{target}**", "", "| trained on | " + " | ".join(columns) + " |",
                     "|" + " --- |" * (len(columns) + 1)]  # fmt: skip
            for metric, label, scale in (("kendall_tau", "tau", 1.0), ("r2", "R^2 %", 100.0)):
                cells = []
                for split in ["test", *ood]:
                    for name in features:
                        value = one[(one["split"] == split) & (one["features"] == name)
                                    & (one["metric"] == metric)]["value"]  # fmt: skip
                        empty = value.empty or pd.isna(value.iloc[0])
                        cells.append("" if empty else f"{value.iloc[0] * scale:.2f}")
                lines.append(f"| {zoo_name} ({label}) | " + " | ".join(cells) + " |")
            parts += [*lines, ""]
    if result.notes:
        parts += ["## Notes", ""] + [f"- {note}" for note in dict.fromkeys(result.notes)] + [""]
    return "\n".join(parts)


def plot_accuracy(result: ProbeResult, folder: Path, target: str = "test_acc") -> list[str]:
    """One PNG per feature set: predicted vs. true ``target`` on the test split (and OOD zoos)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    predictions = result.predictions
    if predictions.empty or target not in set(predictions["target"]):
        return written
    for features in dict.fromkeys(predictions["features"]):
        one = predictions[(predictions["features"] == features) & (predictions["target"] == target)]
        figure, axis = plt.subplots(figsize=(4.5, 4.5))
        for split in dict.fromkeys(one["split"]):
            part = one[one["split"] == split]
            axis.scatter(part["true"].astype(float), part["predicted"].astype(float), s=4, alpha=0.4,
                         label=split)  # fmt: skip
        low = float(np.nanmin(one[["true", "predicted"]].astype(float).to_numpy()))
        high = float(np.nanmax(one[["true", "predicted"]].astype(float).to_numpy()))
        axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        axis.set(xlabel=f"true {target}", ylabel=f"predicted {target}", title=features)
        axis.legend(loc="upper left", markerscale=3)
        figure.tight_layout()
        name = f"pred_{target}_{features.replace(':', '_').replace('/', '_')}.png"[:120]
        figure.savefig(folder / name, dpi=110)
        plt.close(figure)
        written.append(name)
    return written


@contextmanager
def atomic_folder(out: Path, command: str = "probe") -> Iterator[Path]:
    """Yield ``OUT.partial`` to fill (outdir.claimed: one writer per --out, a killed run's
    leftovers cleared); it becomes ``out`` (an empty folder there is replaced) only if the block
    ends without an error, so a failed or interrupted run leaves nothing half-written."""
    out = new_folder(out, allow_empty=True)
    with claimed(out, command, keep_on_failure=False, allow_empty=True) as work:
        yield work


def fill_results(result: ProbeResult, folder: Path, zoo_name: str, settings: str) -> None:
    """The files of a probe's --out, into ``folder`` (``atomic_folder``'s, claimed before the
    probe ran so a busy --out is refused before the work)."""
    result.results.to_csv(folder / "results.csv", index=False)
    (folder / "results.md").write_text(markdown(result, zoo_name, settings))
    plot_accuracy(result, folder)
