"""The ``modelzoo`` command line. Every user error prints one ``error:`` line and exits with 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import ModelZooError

EXIT_USAGE = 2


class ZooGroup(click.Group):
    """Turns ModelZooError (bad spec, damaged zoo, missing data) into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModelZooError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted: finished models are stored; rerun the same command to resume",
                       err=True)  # fmt: skip
            ctx.exit(130)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelzoo")
def main() -> None:
    """Generate, inspect and load model zoos: populations of trained networks used as data.

    \b
    Typical session:
      modelzoo generate tetris_seed            # bundled spec -> ./storage/tetris_seed
      modelzoo status storage/tetris_seed      # progress and failures
      modelzoo info storage/tetris_seed        # factors, accuracy per epoch
      modelzoo verify storage/tetris_seed      # checksums, shapes, tables
      modelzoo spec list                       # the bundled specs from the papers

    In Python: `from modelzoo import open_zoo` (see docs/api.md).
    """


# ------------------------------------------------------------------------------ generate


@main.command()
@click.argument("spec")
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    default=None,
    help="Store root; the zoo goes to STORE/<name>. Default: $MODELZOO_STORE or ./storage.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key by dotted path, e.g. --set training.epochs=5 (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print what the spec expands to and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print one JSON object.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train only the first N runs of the expansion.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray sized to this machine).",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many tasks at once (default: one per CPU core).",
)
@click.option(
    "--engine",
    type=click.Choice(["vectorized", "reference"]),
    default=None,
    help="Training engine (default from the spec: vectorized).",
)
@click.option(
    "--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)."
)
@click.option(
    "--executor",
    type=click.Choice(["ray", "local"]),
    default="ray",
    show_default=True,
    help="'local' trains in this process without Ray.",
)
@click.option(
    "--models-per-task",
    type=click.IntRange(min=1),
    default=None,
    help="Models trained together in one task (default: sized to the device).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the image datasets (default: $MODELZOO_DATA_DIR).",
)
@click.option("--restart", is_flag=True, help="Delete an existing zoo of this name and start over.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(spec, store, overrides, dry_run, as_json, limit, address, max_workers, engine, device,
             executor, models_per_task, data_dir, restart, quiet) -> None:  # fmt: skip
    """Train the zoo described by SPEC (a path, or the name of a bundled spec).

    \b
    Interrupt it at any time: finished models are sealed in the store, and
    running the same command again trains only what is missing.

    \b
    Examples:
      modelzoo generate tetris_seed --limit 20
      modelzoo generate specs/mnist_hyp_5_rand.yaml --data-dir ~/data --dry-run
      modelzoo generate my_zoo.yaml --set training.epochs=5 --set seeds.range=[1,10]
    """
    from .run import generate as run_generate
    from .run import plan, runs_on_cluster
    from .spec import load_spec

    if executor == "local":
        for flag, value in (("--address", address), ("--max-workers", max_workers)):
            if value is not None:
                raise ModelZooError(f"{flag}: only valid with --executor ray, not --executor local")
    loaded = load_spec(spec, overrides)
    data_dir = str(data_dir) if data_dir else None
    if dry_run:
        summary = plan(loaded, limit, engine, device, data_dir, models_per_task,
                       not runs_on_cluster(executor, address)).summary()  # fmt: skip
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            _print_plan(summary)
        return
    if as_json:
        raise ModelZooError("--json: only valid together with --dry-run")
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="model", desc=loaded.name, dynamic_ncols=True, file=sys.stderr)

    def progress(done: int, failed: int, total: int) -> None:
        if bar is None:
            return
        bar.total = total
        bar.n = done
        bar.set_postfix(failed=failed, refresh=False)
        bar.refresh()

    try:
        report = run_generate(loaded, store, address=address, max_workers=max_workers, engine=engine,
                              device=device, limit=limit, data_dir=data_dir, restart=restart,
                              executor=executor, models_per_task=models_per_task,
                              progress=progress)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in report.status.items()) or "nothing new"
    click.echo(f"{report.zoo_dir}: trained {report.trained}, already stored {report.skipped} "
               f"({counts}) in {report.seconds:.1f} s")  # fmt: skip


def _print_plan(summary: dict) -> None:
    size = summary["estimated_store_bytes"]
    click.echo(f"zoo            {summary['zoo']}")
    click.echo(f"models         {summary['models']} (spec: {summary['models_in_spec']})")
    click.echo(f"dataset        {summary['dataset']} {'x'.join(map(str, summary['input_shape']))}")
    click.echo(f"architecture   {summary['architecture']} ({summary['parameters']:,} parameters)")
    click.echo(
        f"epochs         {summary['epochs']} trained, {summary['stored_epochs']} stored per model"
    )
    click.echo(f"states         {summary['states']:,}")
    click.echo(f"factors        {', '.join(summary['factors']) or '(seed only)'}")
    click.echo(f"engine         {summary['engine']}: {summary['training_groups']} training group(s), "
               f"{summary['tasks']} task(s) of up to {summary['models_per_task']} models")  # fmt: skip
    click.echo(f"store size     ~{size / 2**20:.1f} MiB of weights")


# ------------------------------------------------------------------------------ status


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
def status(zoo: Path) -> None:
    """Progress and failures of the zoo folder ZOO."""
    import pandas as pd

    from .store.format import MODELS_TABLE, read_manifest

    manifest = read_manifest(zoo)
    counts = manifest.get("counts", {})
    planned, done = counts.get("planned", 0), counts.get("done", 0)
    click.echo(f"{manifest['name']}: {done}/{planned} models stored "
               f"({100 * done / max(planned, 1):.0f}%) in {len(manifest['shards'])} shard(s)")  # fmt: skip
    click.echo(f"status         ok {counts.get('ok', 0)}, diverged {counts.get('diverged', 0)}, "
               f"failed {counts.get('failed', 0)}")  # fmt: skip
    click.echo(f"updated        {manifest.get('updated', '?')}")
    if done:
        models = pd.read_parquet(zoo / MODELS_TABLE)
        ok = models[models["status"] == "ok"]
        if len(ok):
            acc = ok["test_acc"]
            click.echo(f"test accuracy  mean {acc.mean():.3f}, min {acc.min():.3f}, "
                       f"max {acc.max():.3f} (final stored epoch)")  # fmt: skip
        bad = models[models["status"] != "ok"]
        for _, row in bad.head(10).iterrows():
            click.echo(f"  model {row['model_id']}: {row['status']}: {row['error']}")
        if len(bad) > 10:
            click.echo(f"  ... and {len(bad) - 10} more (see models.parquet)")
    if done < planned:
        click.echo("resume         run the same `modelzoo generate` command again")


# ------------------------------------------------------------------------------ spec


@main.group()
def spec() -> None:
    """Inspect the spec format and the bundled specs."""


@spec.command("schema")
def spec_schema() -> None:
    """Print the JSON Schema of zoo specs (for editors and CI)."""
    from .spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@spec.command("list")
def spec_list() -> None:
    """List the bundled specs (usable by name in `modelzoo generate`)."""
    from .spec import expand, list_bundled_specs, load_spec

    for name in list_bundled_specs():
        loaded = load_spec(name)
        click.echo(f"{name:24s} {len(expand(loaded)):6d} models  {loaded.resolved['source']}")


@spec.command("show")
@click.argument("spec_name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
def spec_show(spec_name: str, overrides: tuple[str, ...]) -> None:
    """Print SPEC resolved: every default filled in, overrides applied (what a zoo records)."""
    import yaml

    from .spec import load_spec

    click.echo(yaml.safe_dump(load_spec(spec_name, overrides).resolved, sort_keys=False), nl=False)


# ------------------------------------------------------------------------------ info


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(zoo: Path, as_json: bool) -> None:
    """Size, factors, status counts and test accuracy per stored epoch of the zoo ZOO."""
    from .zoo import open_zoo

    summary = open_zoo(zoo).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    shape = "x".join(map(str, summary["input_shape"]))
    status = ", ".join(f"{k} {v}" for k, v in sorted(summary["status"].items())) or "none"
    click.echo(f"zoo            {summary['name']} ({summary['path']})")
    click.echo(f"models         {summary['models']} of {summary['planned']} planned ({status})")
    click.echo(f"size           {summary['bytes'] / 2**20:.2f} MiB in {summary['shards']} shard(s)")
    click.echo(f"dataset        {summary['dataset']} {shape}, {summary['num_classes']} classes")
    click.echo(f"architecture   {summary['architecture']} ({summary['parameters']:,} parameters)")
    click.echo(f"epochs         {len(summary['epochs'])} stored: {_short(summary['epochs'])}")
    click.echo("factors")
    for name, values in summary["factors"].items():
        click.echo(f"  {name:14s} {len(values):5d} value(s): {_short(values)}")
    rows = summary["test_acc_per_epoch"]
    if rows:
        bars = "▁▂▃▄▅▆▇█"
        spark = "".join(
            bars[min(7, int(r["mean"] * 8))] if r["mean"] == r["mean"] else " " for r in rows
        )
        click.echo(f"test accuracy  per stored epoch, models with status ok: {spark}")
        click.echo("  epoch    mean     min     max  models")
        for r in rows:
            click.echo(
                f"  {r['epoch']:5d}  {r['mean']:.4f}  {r['min']:.4f}  {r['max']:.4f}  {r['count']:6d}"
            )


def _short(values: list, limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


# ------------------------------------------------------------------------------ verify


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
def verify(zoo: Path) -> None:
    """Check checksums, shapes and tables of the zoo ZOO against its manifest.

    \b
    Exit codes: 0 intact, 1 damaged (each problem is printed), 2 not a zoo / unreadable format.
    """
    from .store.verify import verify_zoo

    report = verify_zoo(zoo)
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo(f"ok: {zoo} is intact ({report.shards} shard(s), {report.models} models, "
                   "checksums, shapes and tables agree)")  # fmt: skip
        return
    for problem in report.problems:
        click.echo(f"damaged: {problem}", err=True)
    click.echo(f"{zoo}: {len(report.problems)} problem(s) found", err=True)
    raise SystemExit(1)


if __name__ == "__main__":
    main()
