"""The report of ``modelzoo sample``: accuracy per method and epoch beside the baselines, with
statistics, ensembles, diversity and reconstruction fidelity, as CSV, Markdown and a box plot.

Baselines (seed 003 Section 4, seed 004 Tables 5-6): ``B_T`` trains the zoo's own spec from its
seeded initialisation with the generated models' seeds (same count, same epochs, same data
order); ``zoo`` is the source zoo's models at the matching epochs; ``reconstruction`` is
decode(encode(w)) of the test-split models at the anchor epoch, evaluated and fine-tuned like
the samples, with its L2 distance and prediction agreement to the originals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import generate as gen
from . import measure

SCRATCH, ZOO, RECON = "B_T (scratch)", "zoo", "reconstruction"


def baselines(ctx: Any) -> dict[str, Any]:
    """Accuracy tables of the three baselines and the reconstruction fidelity."""
    s = ctx.settings
    epochs = list(range(s.finetune_epochs + 1))
    _, runs = ctx.runs_for("scratch", ctx.seeds, ctx.provenance("scratch"))
    scratch = gen.train_from(runs, ctx.data, None, s.finetune_epochs, ctx.engine)
    tables = [gen.results_table(scratch, epochs, SCRATCH)]
    if ctx.target is None:
        m = ctx.zoo.metrics
        m = m[m["epoch"].isin(epochs) & np.isfinite(m["test_acc"])]
        tables.append(pd.DataFrame({"label": ZOO, "model": m["model_id"], "epoch": m["epoch"],
                                    "test_acc": m["test_acc"], "test_loss": m["test_loss"],
                                    "train_acc": m["train_acc"]}))  # fmt: skip
    from ..hyperrep.data import model_splits

    test_ids = model_splits(ctx.zoo, ctx.rep.config["data"])["test"]  # the run's own test models
    epoch = int(ctx.anchors.epochs.max())
    original = ctx.zoo.weights(test_ids, epoch) if len(test_ids) else np.zeros((0, 1))
    original = original[np.isfinite(original).all(1)]
    fidelity: dict[str, float] = {}
    if len(original):
        rebuilt = gen.decode(ctx.rep, gen.embed(ctx.rep, original))
        seeds = [ctx.seeds[0] + s.n + i for i in range(len(original))]
        _, runs = ctx.runs_for("reconstruction", seeds, ctx.provenance("reconstruction"))
        recon = gen.train_from(runs, ctx.data, rebuilt, s.finetune_epochs, ctx.engine)
        tables.append(gen.results_table(recon, epochs, RECON))
        images = ctx.zoo.data("test", data_dir=ctx.data_dir).images
        activation = ctx.zoo.manifest["spec"]["training"]["activation"]
        fidelity = measure.fidelity(original, rebuilt,
                                    measure.probabilities(ctx.zoo.plan, activation, original, images),
                                    measure.probabilities(ctx.zoo.plan, activation, rebuilt, images))  # fmt: skip
        fidelity.update(models=len(original), epoch=epoch)
    return {"tables": tables, "scratch": scratch, "fidelity": fidelity}


def summarise(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per label and epoch: count, mean, std, median, min, max of test accuracy, and Mann-Whitney
    p-value and common-language effect size against B_T and the zoo at the same epoch."""
    rows = []
    for (label, epoch), part in accuracy.groupby(["label", "epoch"], sort=False):
        values = part["test_acc"].to_numpy(float)
        finite = values[np.isfinite(values)]
        row = {"label": label, "epoch": int(epoch), "n": int(finite.size),
               "mean": finite.mean() if finite.size else np.nan,
               "std": finite.std(ddof=1) if finite.size > 1 else np.nan,
               "median": np.median(finite) if finite.size else np.nan,
               "min": finite.min() if finite.size else np.nan,
               "max": finite.max() if finite.size else np.nan}  # fmt: skip
        _, ens, k = label.partition(" ensemble of ")
        pairs = ((f"{SCRATCH}{ens}{k}", "bt"), (None if ens else ZOO, "zoo"))
        for base, key in pairs:  # ensembles against B_T ensembles of the same size
            ref = accuracy[(accuracy["label"] == base) & (accuracy["epoch"] == epoch)]
            stats = (measure.versus(values, ref["test_acc"].to_numpy(float))
                     if len(ref) and label != base else {"p_value": np.nan, "cles": np.nan})  # fmt: skip
            row.update({f"p_vs_{key}": stats["p_value"], f"cles_vs_{key}": stats["cles"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _weights_at(results: list, row: int) -> np.ndarray:
    return np.stack([r.weights[row] for r in results])


def build_report(work: Path, ctx: Any, generated: list, base: dict, ensemble: int) -> None:
    """accuracy.csv (long), report.csv (summary), diversity.csv, report.md, accuracy.png."""
    epochs = list(range(ctx.settings.finetune_epochs + 1))
    tables = [gen.results_table(g.results, epochs, g.method) for g in generated]
    tables += base["tables"]
    activation = ctx.zoo.manifest["spec"]["training"]["activation"]
    test = ctx.data.test
    labels = test.labels.numpy()
    diversity, groups = [], [(g.method, g.results) for g in generated]
    groups.append((SCRATCH, base["scratch"]))
    for label, results in groups:
        for row in sorted({0, epochs[-1]}):
            weights = _weights_at(results, row)
            ok = np.isfinite(weights).all(1)
            probs = measure.probabilities(ctx.zoo.plan, activation, np.where(ok[:, None], weights, 0), test.images)
            diversity.append({"label": label, "epoch": row, **measure.diversity(weights, probs)})
            if ensemble > 1:
                accs = measure.ensemble_accuracy(probs[ok], labels, ensemble)
                tables.append(pd.DataFrame({"label": f"{label} ensemble of {ensemble}",
                                            "model": range(len(accs)), "epoch": row,
                                            "test_acc": accs, "test_loss": np.nan,
                                            "train_acc": np.nan}))  # fmt: skip
    accuracy = pd.concat(tables, ignore_index=True)
    summary = summarise(accuracy)
    accuracy.to_csv(work / "accuracy.csv", index=False)
    summary.to_csv(work / "report.csv", index=False)
    pd.DataFrame(diversity).to_csv(work / "diversity.csv", index=False)
    (work / "settings.json").write_text(json.dumps(
        {**ctx.provenance(",".join(g.method for g in generated)), "methods": [g.method for g in generated],
         "ensemble": ensemble, "fidelity": base["fidelity"]}, indent=2, default=str) + "\n")  # fmt: skip
    (work / "report.md").write_text(markdown(ctx, summary, pd.DataFrame(diversity),
                                             base["fidelity"]), encoding="utf-8")  # fmt: skip
    box_plot(work / "accuracy.png", accuracy, epochs)


def markdown(ctx: Any, summary: pd.DataFrame, diversity: pd.DataFrame, fidelity: dict) -> str:
    s = ctx.settings
    lines = [f"# Sampled networks from {ctx.rep.run_dir}", "",
             f"Zoo `{ctx.zoo.name}`; {len(ctx.anchors.z)} anchors (train split, epochs "
             f"{sorted(set(ctx.anchors.epochs.tolist()))}, min accuracy {s.min_accuracy}); "
             f"n = {s.n} per method, seed {s.seed}; fine-tuned {s.finetune_epochs} epochs on "
             f"{s.finetune_data or 'the zoo dataset'}.", "",
             "## Test accuracy", "",
             "p: two-sided Mann-Whitney U; CLES: P(method > baseline) + P(tie)/2.", "",
             _table(summary), "", "## Diversity (mean pairwise)", "", _table(diversity), ""]  # fmt: skip
    if fidelity:
        lines += ["## Reconstruction fidelity (test-split models)", "",
                  f"{fidelity['models']} models at epoch {fidelity['epoch']}: mean L2 distance "
                  f"{fidelity['l2']:.4g}, prediction agreement {fidelity['agreement']:.4f}.", ""]  # fmt: skip
    else:
        lines += ["## Reconstruction fidelity (test-split models)", "",
                  "Not measured: the run's test split holds no model with finite weights at the "
                  "last anchor epoch (and the reconstruction row is absent for the same reason).",
                  ""]  # fmt: skip
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]  # fmt: skip
    return "\n".join([head, rule, *body])


def box_plot(path: Path, accuracy: pd.DataFrame, epochs: list[int]) -> None:
    """Box plots of test accuracy per label, one panel per reported epoch (0 and the last)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted({0, epochs[-1]})
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4.5), squeeze=False)
    for ax, epoch in zip(axes[0], shown):
        part = accuracy[accuracy["epoch"] == epoch]
        labels = list(dict.fromkeys(part["label"]))
        data = [part.loc[part["label"] == lab, "test_acc"].dropna().to_numpy() for lab in labels]
        ax.boxplot(data, tick_labels=labels)
        ax.set(title=f"epoch {epoch}", ylabel="test accuracy")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
