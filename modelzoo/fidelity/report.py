"""What ``modelzoo fidelity`` prints and writes: the comparison table (text, CSV, Markdown), the
accuracy distribution per epoch, and a PNG of it with the paper's published accuracies marked."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .api import FidelityReport


def _cell(value: float, digits: int = 1) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _digits(row: pd.Series) -> int:
    return 3 if row["kind"] == "variance" else 1


def text_table(report: FidelityReport) -> str:
    """The comparison as aligned text for the terminal."""
    width = max([len(s) for s in report.table["statistic"]] + [9])
    paper = report.paper.name if report.paper else "paper"
    lines = [f"{'statistic':<{width}}  {paper[:12]:>12}  {'ours':>8}  {'ours-paper':>10}"]
    for _, row in report.table.iterrows():
        d = _digits(row)
        lines.append(f"{row['statistic']:<{width}}  {_cell(row['paper'], d):>12}  "
                     f"{_cell(row['ours'], d):>8}  {_cell(row['difference'], d):>10}")  # fmt: skip
    return "\n".join(lines) + "\n"


def markdown(report: FidelityReport, settings: str) -> str:
    """fidelity.md: the comparison table with sources, then the accuracy per epoch."""
    title = report.paper.name if report.paper else "no published zoo"
    lines = [f"# Fidelity of {report.zoo} (compared with {title})", "", settings, "",
             "| statistic | paper | ours | ours - paper | source |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for _, row in report.table.iterrows():
        d = _digits(row)
        lines.append(f"| {row['statistic']} | {_cell(row['paper'], d)} | {_cell(row['ours'], d)} | "
                     f"{_cell(row['difference'], d)} | {row['source']} |")  # fmt: skip
    if report.paper and report.paper.notes:
        lines += ["", *[f"- {note}" for note in report.paper.notes]]
    lines += ["", "## Test accuracy per stored epoch (%)", "",
              "| epoch | models | mean | std | min | q25 | median | q75 | max |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for _, row in report.accuracy.iterrows():
        cells = [_cell(100 * row[c]) for c in ("mean", "std", "min", "q25", "median", "q75", "max")]
        lines.append(f"| {int(row['epoch'])} | {int(row['models'])} | " + " | ".join(cells) + " |")
    if report.notes:
        lines += ["", "Notes:", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def plot_accuracy(report: FidelityReport, path: Path) -> None:
    """Box plot of test accuracy per stored epoch; the paper's mean +- std and ranges on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report.states
    epochs = sorted(metrics["epoch"].unique())
    if len(epochs) > 40:  # keep the plot readable: at most 40 boxes, first and last kept
        step = math.ceil(len(epochs) / 40)
        epochs = sorted(set(epochs[::step]) | {epochs[-1]})
    data = [metrics.loc[metrics["epoch"] == e, "test_acc"].dropna().to_numpy() * 100 for e in epochs]
    figure, axes = plt.subplots(figsize=(max(6.0, 0.25 * len(epochs) + 3), 4.0))
    axes.boxplot(data, positions=range(len(epochs)), widths=0.6, showfliers=False)
    axes.set_xticks(range(len(epochs)), [str(e) for e in epochs], rotation=90, fontsize=7)
    if report.paper:
        accuracy = report.paper.accuracy
        for (statistic, epoch), value in accuracy.items():
            if statistic == "mean" and epoch in epochs:
                x, std = epochs.index(epoch), accuracy.get(("std", epoch), 0.0)
                axes.errorbar([x], [value], yerr=[std], fmt="o", color="tab:red", capsize=4,
                              label=f"{report.paper.name} mean +- std")  # fmt: skip
            elif epoch is None and statistic in ("min", "max"):
                axes.axhline(value, color="tab:red", linestyle="--", linewidth=0.8,
                             label=f"{report.paper.name} {statistic}")  # fmt: skip
        handles, labels = axes.get_legend_handles_labels()
        if handles:
            unique = dict(zip(labels, handles))
            axes.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    axes.set_xlabel("epoch")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"{report.zoo}: test accuracy per epoch")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def fill_report(report: FidelityReport, folder: Path, settings: str) -> None:
    """fidelity.csv, accuracy_by_epoch.csv, fidelity.md and accuracy.png into ``folder``
    (probe's ``atomic_folder``, claimed before the work)."""
    report.table.to_csv(folder / "fidelity.csv", index=False)
    report.accuracy.to_csv(folder / "accuracy_by_epoch.csv", index=False)
    (folder / "fidelity.md").write_text(markdown(report, settings))
    plot_accuracy(report, folder / "accuracy.png")
