"""``modelzoo sample``: sample new networks from a train-ae run, write them as zoos, and report
how good they are against training from scratch, the zoo itself and its reconstructions."""

from __future__ import annotations

from pathlib import Path

import click


def _epochs(text: str | None) -> list[int] | None:
    from ..errors import ModelZooError

    if text is None:
        return None
    try:
        if "-" in text:
            first, last = (int(v) for v in text.split("-", 1))
            return list(range(first, last + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ModelZooError(f"--anchor-epochs: expected 'E', 'A,B,C' or 'FIRST-LAST', "
                            f"got {text!r}") from None  # fmt: skip


def _options(pairs: tuple[str, ...]) -> dict:
    import yaml

    from ..errors import ModelZooError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ModelZooError(f"--option: expected KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


@click.command("sample")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--method", default="kde30", show_default=True,
              help="Sampler: uniform, kde, kde30, counterfactual, neigh, neigh30, gan, gan30, "
              "pca-kde; a comma-separated list; or 'all' (one comparison).")  # fmt: skip
@click.option("--n", "n", type=int, default=100, show_default=True,
              help="Networks per method.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of every draw (and of the fine-tuning data order).")  # fmt: skip
@click.option("--anchor-epochs", default=None, metavar="EPOCHS",
              help="Zoo epochs whose train-split embeddings are the anchors: 'E', 'A,B' or "
              "'FIRST-LAST' (default: the run's last epoch).")  # fmt: skip
@click.option("--min-accuracy", type=float, default=None,
              help="Keep only anchors whose model reached this test accuracy (default: all).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A sampler option, e.g. bandwidth=0.1, steps=500, components=8 "
              "(docs/sample.md lists each sampler's; repeatable).")  # fmt: skip
@click.option("--finetune-epochs", type=int, default=0, show_default=True,
              help="Epochs of training from the decoded weights (0: evaluate at epoch 0 only).")
@click.option("--finetune-data", default=None, metavar="DATASET",
              help="Fine-tune (and evaluate) on this dataset instead of the zoo's (transfer; "
              "same image shape and class count).")  # fmt: skip
@click.option("--ensemble", type=int, default=0, show_default=True,
              help="Also report ensembles of K samples (mean of softmax); 0: none.")
@click.option("--zoo", "zoo", default=None, type=click.Path(path_type=Path),
              help="The run's zoo, if it has moved since train-ae (default: the recorded path).")
@click.option("--data-dir", default=None, help="Image files of the dataset (default: the "
              "train-ae run's --data-dir, else the default data folder).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create (must not exist; written as OUT.partial, renamed when "
              "complete): zoos/<method>/ (store format) and report.{md,csv}, accuracy.csv, "
              "diversity.csv, accuracy.png, settings.json.")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sample(run_dir, method, n, seed, anchor_epochs, min_accuracy, options, finetune_epochs,
           finetune_data, ensemble, zoo, data_dir, out, quiet) -> None:  # fmt: skip
    """Sample new networks from the hyper-representation in RUN_DIR (a train-ae run folder):
    draw embeddings around its train-split anchors, decode them to weights of the zoo's
    architecture, evaluate them on the zoo's test data at epoch 0 and, with --finetune-epochs,
    after fine-tuning. Each method's networks become a zoo (open_zoo, info, verify and probe
    read it; its manifest records run, method and settings); the report compares them with
    training from scratch (B_T), the zoo's own models and the test models' reconstructions:
    Mann-Whitney U p-values, common-language effect sizes, diversity, fidelity.

    \b
    Examples:
      modelzoo sample runs/tetris-ecd --method kde30 --n 50 --out samples/kde30
      modelzoo sample runs/tetris-ecd --method all --finetune-epochs 5 --ensemble 5 \\
          --anchor-epochs 20-25 --out samples/all
      modelzoo sample runs/mnist-lwln --method gan30 --option steps=500 --out samples/gan

    Seeds 003 and 004; docs/sample.md describes every method and setting.
    """
    from ..errors import ModelZooError
    from .api import compare

    if ensemble < 0 or ensemble == 1:
        raise ModelZooError(f"--ensemble: expected 0 (none) or K >= 2, got {ensemble}")
    result = compare(run_dir, method, out, n, seed=seed, ensemble=ensemble, zoo=zoo,
                     data_dir=data_dir, progress=not quiet, anchor_epochs=_epochs(anchor_epochs),
                     min_accuracy=min_accuracy, finetune_epochs=finetune_epochs,
                     finetune_data=finetune_data, options=_options(options))  # fmt: skip
    click.echo(f"{result}: {len(list((result / 'zoos').iterdir()))} sampled zoo(s) of {n} "
               f"networks; report in {result / 'report.md'}")  # fmt: skip
