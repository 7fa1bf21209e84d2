"""``modelzoo probe``: fit probes on a zoo's feature sets and write results.csv, results.md, PNGs."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click


def parse_fractions(text: str) -> tuple[float, ...]:
    """``--splits 0.7,0.15,0.15`` -> fractions (checked again where the split is made)."""
    from ..errors import ModelZooError

    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ModelZooError(
            f"--splits: expected three fractions like 0.7,0.15,0.15, got {text!r}"
        ) from None


def _names(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@click.command("probe")
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--features", "features", multiple=True, metavar="NAMES",
              help="Feature sets, comma-separated or repeated (default: W, sW, pca_linear, "
              "pca_cosine, pca_rbf, umap). See --list.")  # fmt: skip
@click.option("--embeddings", multiple=True, type=click.Path(path_type=Path), metavar="RUN_DIR",
              help="A train-ae run folder; adds feature set embedding:RUN_DIR (repeatable).")  # fmt: skip
@click.option("--targets", multiple=True, metavar="NAMES",
              help="Targets, comma-separated (default: every property that varies; 'f1' means "
              "all per-class F1). Constant ones are skipped with a note.")  # fmt: skip
@click.option("--probe", "probe_name", default="linear", show_default=True,
              type=click.Choice(["linear", "mlp"]),
              help="linear: ridge (alpha on validation, 1e-5..1e3) / logistic regression; "
              "mlp: scikit-learn MLP as the non-linear reference.")  # fmt: skip
@click.option("--epochs", default="all", show_default=True, metavar="all|last|A:B|E,E",
              help="all: every stored epoch (seed 001); last: final checkpoints (metanetwork "
              "papers); A:B an inclusive window; or a list.")  # fmt: skip
@click.option("--ood", multiple=True, type=click.Path(path_type=Path), metavar="ZOO",
              help="Score the fitted probes on another zoo of the same architecture (its test "
              "split; repeatable).")  # fmt: skip
@click.option(
    "--splits",
    default=None,
    help="Model-level train,val,test fractions (zoo.split). Default: 0.7,0.15,0.15, or with "
    "--embeddings the splits that run was trained on (its training models stay out of the "
    "probe's test split).",
)
@click.option("--split-seed", default=None, type=int,
              help="Seed of the model-level split. Default: 0, or the --embeddings run's.")  # fmt: skip
@click.option(
    "--components", default=16, show_default=True, help="Dimensions of PCA, kernel PCA and UMAP."
)
@click.option(
    "--fit-samples",
    default=2000,
    show_default=True,
    help="Train states kernel PCA and UMAP are fitted on (seeded subsample).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of subsamples, UMAP and MLP.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write (new or empty): results.csv, results.md, pred_test_acc_*.png.",
)
@click.option("--list", "list_features", is_flag=True, help="List feature sets and probes.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def probe(zoo, features, embeddings, targets, probe_name, epochs, ood, splits, split_seed,
          components, fit_samples, seed, out, list_features, quiet) -> None:  # fmt: skip
    """How much do a zoo's weights know about its models? Fits a probe per (feature set,
    target) on the train split of ZOO (every epoch of a model in one split), chooses its
    regularisation on the validation split and prints test R^2 (continuous targets) or
    accuracy (categorical ones), as in seed 001's Table 5.

    \b
    Example:
      modelzoo probe storage/tetris_seed --features W,sW,pca_linear --out probe_tetris
      modelzoo probe storage/mnist_hyp --embeddings runs/ae --epochs last --out probe_mnist

    Writes results.csv (target, features, probe, metric, split, value), results.md
    (the papers' table layouts) and one PNG of predicted vs. true test accuracy per feature set.
    """
    from ..outdir import resolved
    from .api import DEFAULT_FEATURES, run_probe
    from .features import DESCRIPTIONS
    from .report import atomic_folder, fill_results, markdown

    if list_features:
        for name, text in DESCRIPTIONS.items():
            click.echo(f"{name:12s} {text}")
        click.echo("probes: linear (ridge / logistic regression), mlp (scikit-learn MLP)")
        return
    if embeddings and (splits is None or split_seed is None):
        from ..hyperrep.folder import CONFIG, check_run_dir
        from ..hyperrep.reading import read_run_config

        record = read_run_config(check_run_dir(embeddings[0]) / CONFIG)["zoo"]
        splits = splits if splits is not None else ",".join(map(str, record["splits"]))
        split_seed = split_seed if split_seed is not None else record["split_seed"]
    splits = splits if splits is not None else "0.7,0.15,0.15"
    split_seed = split_seed if split_seed is not None else 0
    fractions = parse_fractions(splits)
    names = _names(features) or ([] if embeddings else list(DEFAULT_FEATURES))
    names += [f"embedding:{run}" for run in embeddings]
    with contextlib.ExitStack() as stack:
        # --out claimed before the work: a busy or unusable one is refused now, not after it
        folder = None if out is None else stack.enter_context(atomic_folder(out, "probe"))
        result = run_probe(zoo, names, _names(targets) or None, probe_name, epochs, list(ood),
                           fractions, split_seed, components, fit_samples, seed,
                           progress=not quiet)  # fmt: skip
        settings = f"epochs: {epochs}; splits {splits} (seed {split_seed})"
        click.echo(markdown(result, Path(zoo).name, settings))
        if not click.get_text_stream("stdout").isatty():  # the text has them; `> f` hides them
            for note in dict.fromkeys(result.notes):
                click.echo(f"note: {note}", err=True)
        for name, seconds in result.seconds.items():
            click.echo(f"time {name}: {seconds:.1f} s", err=True)
        if folder is not None:
            fill_results(result, folder, Path(zoo).name, settings)
    if out is not None:
        click.echo(f"wrote {resolved(out)}/results.csv, results.md and plots", err=True)
