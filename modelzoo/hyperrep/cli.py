"""``modelzoo train-ae``: train a hyper-representation on a zoo and write its run folder."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("train-ae")
@click.argument("zoo", required=False, type=click.Path(path_type=Path))
@click.option(
    "--preset",
    default=None,
    metavar="NAME",
    help="A row of the papers' tables (see --list-presets). Default: modelzoo's "
    "defaults (AttN+t, EcD).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(path_type=Path),
    help="YAML file with any of the sections model, projection, loss, data, augment, "
    "train (over the preset).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one key, e.g. --set loss.gamma=0.2 (repeatable; over --config; values "
    "parsed as YAML). Every key with its default: --list-keys.",
)
@click.option(
    "--epochs", type=int, default=None, help="Training epochs (train.epochs, over --set and --config; default 100, the 2021 presets 1000, lwln 1750)."
)
@click.option("--device", default=None,
              help="cpu, cuda, cuda:N, or auto (a GPU when there is one) (train.device; default cpu).")
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Image files for the behavioural loss's queries (data.data_dir), e.g. "
    "../shared/data/mnist.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder to create (must not exist; an interrupted run of the same "
    "command resumes from OUT.partial).",
)
@click.option(
    "--list-presets",
    is_flag=True,
    help="Print the presets: each one's source and the settings it changes from the defaults.",
)
@click.option(
    "--list-keys", is_flag=True, help="Print every config key with its default and meaning."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_ae(
    zoo, preset, config_file, overrides, epochs, device, data_dir, out, list_presets, list_keys,
    quiet,
) -> None:
    """Train an autoencoder on the weights of ZOO (the 2021/2022/2025 hyper-representation
    papers) and write a run folder: config.yaml, weights (safetensors), normalization.json,
    log.parquet, curves.png and embeddings.parquet (one row per stored model-epoch).

    \b
    Examples:
      modelzoo train-ae --list-presets
      modelzoo train-ae storage/tetris_seed --preset ecd --out runs/tetris-ecd
      modelzoo train-ae storage/tetris_seed --preset ed --epochs 50 \\
          --set train.lr=1e-3 --set data.epochs=[0,25,50,75] --out runs/tetris-ed
      modelzoo train-ae storage/mnist_seed --preset lc+ls+lb --device cuda \\
          --set data.epochs=null --data-dir ../shared/data/mnist --out runs/mnist-b

    Interrupted (Ctrl-C, kill -9)? Rerun the same command: it resumes from OUT.partial and ends
    with the weights an uninterrupted run has. See docs/hyperrep.md.
    """
    from ..errors import ModelZooError

    if list_keys:
        from .config import FIELDS

        width = max(len(key) for key in FIELDS)
        for key, field in FIELDS.items():
            default = field.default if isinstance(field.default, str) else json.dumps(field.default, separators=(",", ":"))
            click.echo(f"{key:<{width}}  {default:<10}  {field.help}")
        return
    if list_presets:
        from .config import defaults
        from .presets import PRESETS, get_preset

        if preset is not None:
            get_preset(preset)  # a misspelt --preset beside --list-presets is still one line

        base = defaults()
        width = max(len(name) for name in PRESETS)
        for name, entry in PRESETS.items():
            click.echo(f"{name:<{width}}  {entry.source}")
            changed = [f"{section}.{key}={value if isinstance(value, str) else json.dumps(value)}"
                       for section, values in entry.settings.items()
                       for key, value in values.items() if base[section].get(key) != value]  # fmt: skip
            click.echo(f"{'':<{width}}    sets: {', '.join(changed) or '(the defaults)'}")
        return
    if zoo is None:
        raise ModelZooError("train-ae: missing ZOO (a zoo folder); see modelzoo train-ae --help")
    if out is None:
        raise ModelZooError("train-ae: missing --out DIR (the run folder to create)")
    from ..zoo import open_zoo
    from .api import run_training
    from .config import build_config

    extra = [f"data.data_dir={data_dir}"] if data_dir is not None else []
    config = build_config(preset, config_file, [*overrides, *extra], epochs=epochs, device=device)
    try:
        rep = run_training(open_zoo(zoo), config, out, preset=preset, progress=not quiet)
    except KeyboardInterrupt:
        from ..outdir import partial, resolved
        from .folder import STATE_JSON

        work = partial(resolved(out))  # as run_training named it, however --out was spelt
        said = (f"{work} keeps the last finished epoch; rerun the same command to resume"
                if (work / STATE_JSON).is_file() else "before the first epoch finished; nothing "
                "to resume from: run the same command again")  # fmt: skip
        click.echo(f"interrupted: {said}", err=True)
        click.get_current_context().exit(130)
    log = rep.log.set_index("epoch")
    r2 = log["r2_test"].get(rep.epoch, float("nan")) if "r2_test" in log else float("nan")
    test_states = rep.config["zoo"]["split_states"][2]
    if rep.config["loss"]["gamma"] == 1:
        shown = "contrast only: no decoder was trained"
    elif test_states < 2:
        shown = f"no test R^2: the test split holds {test_states} state(s)"
    elif r2 == r2:
        shown = f"test R^2 {r2:.3f}"
    else:
        shown = "test R^2 not logged at that epoch (eval_every)"
    click.echo(
        f"{rep.run_dir}: {rep.config['model']['name']} L={rep.latent}, {int(log.index.max())} epochs; "
        f"kept the {rep.config['train']['select']} checkpoint (epoch {rep.epoch}, {shown}); "
        f"embeddings of {len(rep.embeddings)} model-epochs"
    )
