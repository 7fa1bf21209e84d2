"""``modelzoo report``: the pictures and tables a reader of a zoo wants, as PNG + Markdown.

Plots (matplotlib, headless): test accuracy per stored epoch (a box per epoch), the final accuracy
distribution (one box per value of each grid factor when the zoo has a grid), train vs. test
accuracy (the generalisation gap), a 2-D projection (PCA, or UMAP) of the weights at one epoch
coloured by accuracy and by each generating factor, and status counts. ``report.md`` holds the
summary table of ``modelzoo info`` and links every picture. Only models with status ``ok``
enter the accuracy plots (diverged and failed ones are counted in the status table).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelZooError

if TYPE_CHECKING:
    from ..zoo import Zoo

PROJECTIONS = ("pca", "umap")
MAX_BOXES = 40  # epochs shown in the box plot; more are thinned evenly (first and last kept)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_factors(zoo: Zoo) -> dict[str, list]:
    """The varying factors other than the seed: the zoo's hyperparameter grid."""
    return {k: v for k, v in zoo.factors().items() if k != "seed"}


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies in it (symlinks resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _thin(values: list[int], limit: int = MAX_BOXES) -> list[int]:
    if len(values) <= limit:
        return values
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, limit)).astype(int))
    return [values[i] for i in picks]


def make_report(
    zoo: Zoo, out: str | Path, epoch: int | None = None, projection: str = "pca", seed: int = 0
) -> Path:
    """Write the PNGs and ``report.md`` of ``zoo`` into the folder ``out``; returns report.md."""
    if projection not in PROJECTIONS:
        raise ModelZooError(
            f"report: unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}"
        )
    if epoch is not None and epoch not in zoo.epochs:
        raise ModelZooError(
            f"report: epoch {epoch} is not stored; choose one of: {zoo.epochs[0]}..{zoo.epochs[-1]}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    models = zoo.models
    ok = models[models["status"] == "ok"]
    metrics = zoo.metrics
    metrics = metrics[metrics["model_id"].isin(ok["model_id"])]
    pictures: list[tuple[str, str]] = []

    def save(fig: Any, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        pictures.append((name, title))

    if len(ok):
        shown = _thin(zoo.epochs)
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(shown)), 4))
        data = [metrics.loc[metrics["epoch"] == e, "test_acc"].dropna().to_numpy() for e in shown]
        ax.boxplot(data, tick_labels=[str(e) for e in shown])
        ax.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy per stored epoch")
        ax.tick_params(axis="x", labelrotation=90 if len(shown) > 15 else 0)
        save(fig, "accuracy_over_epochs.png", "Test accuracy over epochs")

        grid = grid_factors(zoo)
        panels = list(grid) or [None]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
        for ax, factor in zip(axes[0], panels):
            if factor is None:
                ax.hist(ok["test_acc"].dropna(), bins=min(30, max(5, len(ok) // 3)))
                ax.set(xlabel="final test accuracy", ylabel="models")
            else:
                values = grid[factor]
                ax.boxplot([ok.loc[ok[factor] == v, "test_acc"].dropna() for v in values],
                           tick_labels=[str(v) for v in values])  # fmt: skip
                ax.set(xlabel=factor, ylabel="final test accuracy")
        fig.suptitle("Final test accuracy")
        save(fig, "final_accuracy.png", "Final accuracy distribution")

        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(ok["train_acc"], ok["test_acc"], s=12, alpha=0.7)
        low = float(np.nanmin(ok[["train_acc", "test_acc"]].to_numpy())) if len(ok) else 0.0
        ax.plot([low, 1], [low, 1], color="grey", linewidth=1, label="no gap")
        ax.set(xlabel="train accuracy", ylabel="test accuracy", title="Generalisation gap")
        ax.legend()
        save(fig, "generalisation_gap.png", "Train vs. test accuracy")

        at = zoo.epochs[-1] if epoch is None else epoch
        save(*_projection(zoo, ok, at, projection, seed, plt), f"Weights at epoch {at}")

    counts = models["status"].value_counts()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(counts.index.astype(str), counts.to_numpy())
    ax.set(ylabel="models", title="Status")
    save(fig, "status.png", "Status counts")

    text = _markdown(zoo, counts.to_dict(), pictures, projection)
    (out / "report.md").write_text(text, encoding="utf-8")
    return out / "report.md"


def _projection(zoo: Zoo, ok: Any, epoch: int, method: str, seed: int, plt: Any):
    ids = ok["model_id"].to_numpy()
    weights = zoo.weights(ids, epoch)
    keep = np.isfinite(weights).all(axis=1)
    ids, weights = ids[keep], weights[keep]
    frame = ok.set_index("model_id").loc[ids]
    if method == "umap" and len(ids) > 3:
        import umap

        neighbours = min(15, len(ids) - 1)
        points = umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(weights)
    else:
        from sklearn.decomposition import PCA

        components = min(2, len(ids), weights.shape[1])
        points = PCA(n_components=components, random_state=seed).fit_transform(weights)
        if points.shape[1] < 2:
            points = np.column_stack([points, np.zeros(len(points))])
    at = zoo.metrics
    acc = at[(at["epoch"] == epoch)].set_index("model_id").loc[ids, "test_acc"].to_numpy()
    colours = [("test accuracy", acc)] + [(f, frame[f].to_numpy()) for f in zoo.factors()]
    fig, axes = plt.subplots(1, len(colours), figsize=(4.5 * len(colours), 4), squeeze=False)
    for ax, (label, values) in zip(axes[0], colours):
        if np.asarray(values).dtype.kind in "fiu" and label != "seed":
            art = ax.scatter(points[:, 0], points[:, 1], c=values, s=14, cmap="viridis")
            fig.colorbar(art, ax=ax, label=label)
        else:
            for value in sorted(set(values.tolist()), key=str):
                mask = values == value
                ax.scatter(points[mask, 0], points[mask, 1], s=14, label=str(value))
            if len(set(values.tolist())) <= 12:
                ax.legend(title=label, fontsize="small")
        ax.set(title=f"coloured by {label}", xticks=[], yticks=[])
    fig.suptitle(f"{method.upper()} of the weights at epoch {epoch}")
    return fig, "weights_projection.png"


def _markdown(zoo: Zoo, status: dict, pictures: list[tuple[str, str]], projection: str) -> str:
    summary = zoo.summary()
    shape = "x".join(map(str, summary["input_shape"]))
    rows = [
        ("zoo", summary["name"]),
        ("models", f"{summary['models']} of {summary['planned']} planned"),
        ("dataset", f"{summary['dataset']} {shape}, {summary['num_classes']} classes"),
        ("architecture", f"{summary['architecture']} ({summary['parameters']:,} parameters)"),
        (
            "stored epochs",
            f"{len(summary['epochs'])}: {summary['epochs'][0]}..{summary['epochs'][-1]}",
        ),
        ("size", f"{summary['bytes'] / 2**20:.2f} MiB in {summary['shards']} shard(s)"),
    ]
    rows += [(f"factor {k}", ", ".join(map(str, v))) for k, v in summary["factors"].items()]
    rows += [(f"setting {k}", str(v)) for k, v in summary["settings"].items()]
    lines = [f"# Report: {summary['name']}", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## Status", "", "| status | models |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(status.items())]
    per_epoch = summary["test_acc_per_epoch"]
    if per_epoch:
        lines += ["", "## Test accuracy per stored epoch (status ok)", "",
                  "| epoch | mean | min | max | models |", "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        lines += [
            f"| {r['epoch']} | {r['mean']:.4f} | {r['min']:.4f} | {r['max']:.4f} | {r['count']} |"
            for r in per_epoch
        ]
    lines += ["", "## Pictures", ""]
    for name, title in pictures:
        lines += [f"### {title}", "", f"![{title}]({name})", ""]
    if any(name == "weights_projection.png" for name, _ in pictures):
        lines += [f"The projection is {projection.upper()} of the flat weight vectors (float32)."]
    return "\n".join(lines) + "\n"
