"""The Python API: ``sample(run, method, n, out=...) -> Zoo`` writes one sampler's networks as a
zoo; ``compare(run, methods, n, out)`` writes one zoo per method plus the report that sets them
against the baselines (training from scratch, the zoo's own models, reconstructions)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelZooError
from ..outdir import claimed, new_folder
from . import generate as gen
from .samplers import check_anchor_count, check_options, draw, get_sampler, list_samplers


@dataclasses.dataclass
class Settings:
    """Everything a sample depends on (recorded in the generated zoo's manifest)."""

    n: int = 100
    seed: int = 0
    anchor_epochs: list[int] | None = None
    min_accuracy: float | None = None
    finetune_epochs: int = 0
    finetune_data: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        if self.n < 1:
            raise ModelZooError(f"--n: expected at least 1 network, got {self.n}")
        if self.seed < 0:
            raise ModelZooError(f"--seed: expected an integer >= 0, got {self.seed}")
        if self.finetune_epochs < 0:
            raise ModelZooError(f"--finetune-epochs: expected >= 0, got {self.finetune_epochs}")
        if self.anchor_epochs is not None and len(self.anchor_epochs) == 0:
            raise ModelZooError("--anchor-epochs: no epoch given (FIRST-LAST needs FIRST <= LAST)")
        m = self.min_accuracy
        if m is not None and not (isinstance(m, int | float) and 0 <= m <= 1):
            raise ModelZooError(f"--min-accuracy: expected a test accuracy in [0, 1], got {m}")


def options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The --option values that ``method`` takes (a list of methods shares one set)."""
    known = get_sampler(method).options
    return {k: v for k, v in options.items() if k in known}


@dataclasses.dataclass
class Generated:
    method: str
    z: np.ndarray
    weights: np.ndarray  # decoded, [n, P]
    runs: list
    results: list
    spec: Any
    dataset: dict


class Context:
    """A run folder, its zoo, its anchors and the evaluation data, loaded once for all methods."""

    def __init__(self, run: Any, settings: Settings, zoo: Any = None, data_dir: str | None = None):
        from ..data import DataConfig, load_training_data
        from ..hyperrep import load_autoencoder

        settings.check()
        self.rep = run if hasattr(run, "decode") else load_autoencoder(run)
        if self.rep.config["loss"]["gamma"] == 1:
            raise ModelZooError(f"{self.rep.run_dir}: trained with loss.gamma=1 (contrast only, "
                                "e.g. --preset ec): its decoder was never trained, so its samples "
                                "would be noise; sample from a run with gamma < 1")  # fmt: skip
        if data_dir is None:  # where train-ae found the images (--data-dir), if it was told
            data_dir = self.rep.config["data"]["data_dir"]
        self.data_dir = data_dir  # every image read of this sampling uses it
        self.settings = settings
        self.zoo = gen.source_zoo(self.rep, zoo)
        self.anchors = gen.select_anchors(self.rep, self.zoo, settings.anchor_epochs,
                                          settings.min_accuracy)  # fmt: skip
        self.target = gen.finetune_dataset(self.zoo, settings.finetune_data)
        section = self.target or self.zoo.manifest["spec"]["dataset"]
        self.data = load_training_data(DataConfig.from_section(section, data_dir))
        self.dataset = dict(self.zoo.manifest["dataset"])
        if self.target is not None:
            self.dataset.update(name=self.target["name"], spec=self.target)
        self.engine = self.zoo.manifest["spec"].get("execution", {}).get("engine", "vectorized")
        first = settings.seed * 100_000 + gen.SEED_BASE
        self.seeds = list(range(first, first + settings.n))

    def check_anchors(self, methods: list[str]) -> None:
        """Enough anchors for every method, before anything is drawn or written."""
        for method in methods:
            options = options_for(method, self.settings.options)
            check_anchor_count(method, len(self.anchors.z), options)

    def provenance(self, method: str) -> dict[str, Any]:
        s = self.settings
        return {"tool": "modelzoo sample", "run": str(Path(self.rep.run_dir).resolve()),
                "zoo": self.zoo.name, "method": method, "n": s.n, "seed": s.seed,
                "anchor_epochs": sorted(set(self.anchors.epochs.tolist())),
                "anchors": len(self.anchors.z), "min_accuracy": s.min_accuracy,
                "finetune_epochs": s.finetune_epochs, "finetune_data": s.finetune_data,
                "options": s.options}  # fmt: skip

    def runs_for(self, name: str, seeds: list[int], provenance: dict) -> tuple[Any, list]:
        from ..spec import expand

        spec = gen.generated_spec(self.zoo, name, seeds, self.settings.finetune_epochs,
                                  self.target, provenance)  # fmt: skip
        return spec, expand(spec)

    def generate(self, method: str, name: str) -> Generated:
        """Draw, decode and evaluate (and fine-tune) ``n`` networks of ``method``."""
        s, a = self.settings, self.anchors
        z = draw(method, a.z, a.accuracy, s.n, s.seed, **options_for(method, s.options))
        weights = gen.decode(self.rep, z)
        spec, runs = self.runs_for(name, self.seeds, self.provenance(method))
        results = gen.train_from(runs, self.data, weights, s.finetune_epochs, self.engine)
        return Generated(method, z, weights, runs, results, spec, self.dataset)


def write(generated: Generated, ctx: Context, out: Path) -> Any:
    """The generated networks as a zoo at ``out``, opened."""
    from ..zoo import open_zoo

    gen.write_zoo(out, generated.spec, generated.runs, generated.results, ctx.zoo,
                  generated.dataset)  # fmt: skip
    return open_zoo(out)


def zoo_name(out: Path) -> str:
    name = out.name
    if not gen_name_ok(name):
        raise ModelZooError(f"--out {out}: the folder name must be letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit")  # fmt: skip
    return name


def gen_name_ok(name: str) -> bool:
    from ..spec.fields import ZOO_NAME

    return bool(ZOO_NAME.fullmatch(name))


def sample(run: Any, method: str, n: int = 100, *, out: str | Path | None = None,
           seed: int = 0, zoo: Any = None, data_dir: str | None = None,
           **settings: Any) -> Any:  # fmt: skip
    """Sample ``n`` networks with ``method`` from train-ae run ``run`` (folder or loaded
    autoencoder), evaluate them at epoch 0 (and fine-tune ``finetune_epochs``), and write them
    as a zoo at ``out`` (default: a new temporary folder). Returns the opened Zoo.

    ``settings``: anchor_epochs, min_accuracy, finetune_epochs, finetune_data, options (the
    sampler's options, e.g. ``{"bandwidth": 0.1}``)."""
    if method == "all" or "," in method:
        raise ModelZooError(f"sample: one method per call, got {method!r}; compare() runs several "
                            "into one report")  # fmt: skip
    check_options(method, settings.get("options") or {})
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(Settings)})
    if unknown:
        raise ModelZooError(f"sample: unknown setting {unknown[0]!r}")
    out = new_folder(out if out is not None else
                     Path(tempfile.mkdtemp(prefix="modelzoo-sample-")) / method)  # fmt: skip
    ctx = Context(run, Settings(n=int(n), seed=int(seed), **settings), zoo, data_dir)
    ctx.check_anchors([method])
    return write(ctx.generate(method, zoo_name(out)), ctx, out)


def methods_of(method: str) -> list[str]:
    """``all`` or a comma-separated list of sampler names, each checked, repeats dropped."""
    if method.strip() == "all":
        return list_samplers()
    names = list(dict.fromkeys(m.strip() for m in method.split(",") if m.strip()))
    choices = f"choose one of: {', '.join(list_samplers())}, all"
    if not names:
        raise ModelZooError(f"--method: no sampler given in {method!r}; {choices}")
    unknown = [name for name in names if name not in list_samplers()]
    if unknown:
        raise ModelZooError(f"--method: unknown sampler {unknown[0]!r}; {choices}")
    return names


def compare(run: Any, method: str, out: str | Path, n: int = 100, *, seed: int = 0,
            ensemble: int = 0, zoo: Any = None, data_dir: str | None = None,
            progress: bool = False, **settings: Any) -> Path:  # fmt: skip
    """One zoo per method under ``out/zoos/<method>`` and the report ``out/report.{csv,md}``,
    ``out/accuracy.png`` with the baselines; written under ``out.partial``, renamed at the end."""
    from tqdm.auto import tqdm

    from .report import baselines, build_report

    methods = methods_of(method)
    known = {k for name in methods for k in get_sampler(name).options}
    for key in settings.get("options") or {}:
        if key not in known:
            raise ModelZooError(f"--option {key}: no chosen sampler takes it; valid: "
                                f"{', '.join(sorted(known)) or 'none'}")  # fmt: skip
    for name in methods:  # values checked before the run and its data are loaded
        check_options(name, options_for(name, settings.get("options") or {}))
    if int(ensemble) > int(n):
        raise ModelZooError(f"--ensemble {ensemble}: more than the {n} networks per method (--n)")
    out = new_folder(out)
    ctx = Context(run, Settings(n=int(n), seed=int(seed), **settings), zoo, data_dir)
    ctx.check_anchors(methods)
    # one sample per --out (outdir.claimed): started empty, renamed when complete, removed when
    # it fails or is interrupted
    with claimed(out, "sample", keep_on_failure=False) as work:
        (work / "zoos").mkdir()
        generated = []
        for name in tqdm(methods, desc="samplers", disable=not progress):
            g = ctx.generate(name, name)
            gen.write_zoo(work / "zoos" / name, g.spec, g.runs, g.results, ctx.zoo, g.dataset)
            generated.append(g)
        build_report(work, ctx, generated, baselines(ctx), int(ensemble))
    return out
