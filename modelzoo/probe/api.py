"""``probe(zoo, features=[...], targets=[...], probe="linear")``: how much feature sets of a zoo's
weights know about its models, as a long results table (target, features, probe, metric, split,
value). ``run_probe`` returns the same table plus the test predictions and notes (for plots and
for ``modelzoo fidelity``).

Every feature set and probe is fitted on the zoo's train split only (the validation split chooses
the probe's regularisation), scored on the test split; ``ood`` zoos of the same architecture are
then scored with the very same fitted transforms and probes (seed 001, Table 7).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelZooError
from ..tokens import WeightStructure
from .data import DEFAULT_FRACTIONS, Samples, choose_targets, load_samples, parse_epochs
from .features import FeatureContext, build_transform, check_feature_names
from .probes import PROBES, fit_probe, fit_ridges, score

DEFAULT_FEATURES = ("W", "sW", "pca_linear", "pca_cosine", "pca_rbf", "umap")
COLUMNS = ["target", "features", "probe", "metric", "split", "value"]
MIN_FIT = 20  # fewest train states kernel PCA and UMAP are fitted on


@dataclass
class ProbeResult:
    """The long results table, the test-split (and OOD) predictions, notes and seconds per feature set."""

    results: pd.DataFrame
    predictions: pd.DataFrame  # features, target, split, model_id, epoch, true, predicted
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


def _open(zoo):
    from ..zoo import Zoo, open_zoo

    return zoo if isinstance(zoo, Zoo) else open_zoo(Path(zoo))


def _same_architecture(zoo, other) -> None:
    mine = [(s.name, tuple(s.shape), s.offset) for s in zoo.layout]
    theirs = [(s.name, tuple(s.shape), s.offset) for s in other.layout]
    if mine != theirs:
        raise ModelZooError(f"--ood {other.path}: architecture {other.architecture} "
                            f"({other.parameters} parameters) differs from {zoo.architecture} "
                            f"({zoo.parameters} parameters) of {zoo.path}")  # fmt: skip


def _embedding_notes(name: str, record: dict, zoo, fractions, split_seed) -> list[str]:
    """Warn when a train-ae run (its checked ``zoo:`` record) was trained on another zoo or
    split than the probe uses."""
    if record["spec_fingerprint"] not in (None, zoo.manifest.get("spec_fingerprint")):
        return [f"{name}: encoder trained on zoo {record['name']} ({record['path']}), not "
                f"{zoo.name} ({Path(zoo.path).resolve()})"]  # fmt: skip
    same_split = [float(f) for f in record["splits"]] == [float(f) for f in fractions]
    if not same_split or record["split_seed"] != int(split_seed):
        return [f"{name}: encoder trained on splits {record['splits']} (seed "
                f"{record['split_seed']}), probe uses {list(fractions)} (seed {split_seed}): "
                "the encoder may have seen test models"]  # fmt: skip
    return []


def _ood_transform(transform, label: str, samples: Samples) -> np.ndarray:
    """A feature set on an OOD zoo's states; a failure names that zoo."""
    try:
        return transform(samples.weights)
    except ModelZooError as error:
        raise ModelZooError(f"{label.removeprefix('ood:')}: {error}") from None


def run_probe(zoo, features: Sequence[str] = DEFAULT_FEATURES, targets: Sequence[str] | None = None,
              probe: str = "linear", epochs: str | Sequence[int] = "all", ood: Sequence = (),
              fractions: Sequence[float] = DEFAULT_FRACTIONS, split_seed: int = 0,
              components: int = 16, fit_samples: int = 2000, seed: int = 0,
              progress: bool = True, samples: Samples | None = None) -> ProbeResult:  # fmt: skip
    """Fit every (feature set, target) probe on ``zoo``'s train split and score val/test/OOD.

    ``samples``: the zoo's states as ``load_samples`` read them with the same epochs, fractions
    and split seed, when the caller has them already (``modelzoo fidelity``)."""
    from tqdm.auto import tqdm

    zoo = _open(zoo)
    features = check_feature_names(list(features))
    encoders = {}  # loaded once, up front: a damaged run folder is one line before any fit
    for name in features:
        if name.startswith("embedding:"):
            from ..hyperrep import load_autoencoder

            encoders[name] = load_autoencoder(name.partition(":")[2])
    if not features:
        raise ModelZooError("features: none given; valid: " + ", ".join(DEFAULT_FEATURES))
    if isinstance(components, bool) or not isinstance(components, int) or components < 1:
        raise ModelZooError(f"--components: expected an integer >= 1, got {components!r}")
    if isinstance(fit_samples, bool) or not isinstance(fit_samples, int) or fit_samples < MIN_FIT:
        raise ModelZooError(f"--fit-samples: expected an integer >= {MIN_FIT} (kernel PCA and "
                            f"UMAP need neighbours), got {fit_samples!r}")  # fmt: skip
    if probe not in PROBES:
        raise ModelZooError(f"probe: unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    protocol = parse_epochs(epochs if isinstance(epochs, str) else ",".join(map(str, epochs)),
                            zoo.epochs)  # fmt: skip
    if samples is None:
        samples = load_samples(zoo, protocol, fractions, split_seed)
    chosen, notes = choose_targets(samples.table, list(targets) if targets else None)
    if not chosen:
        raise ModelZooError(f"{zoo.path}: no target varies in the chosen samples")
    others: list[tuple[str, Samples]] = []
    for path in ood:
        other = _open(path)
        _same_architecture(zoo, other)
        if protocol not in ("all", "last"):
            protocol_other = [e for e in protocol if e in other.epochs] or protocol
        else:
            protocol_other = protocol
        other_samples = load_samples(other, protocol_other, fractions, split_seed)
        taken = {name for name, _ in others}
        label = f"ood:{other.name}"  # zoos of one spec in other stores share a name: use paths
        if other.name == zoo.name or label in taken:
            label = f"ood:{Path(other.path).resolve()}"
        if label in taken:
            raise ModelZooError(f"--ood {path}: given twice")
        if not len(other_samples.rows("test")):
            notes.append(f"{label}: no recorded states in its test split ({len(other.model_ids)} "
                         "models): not scored")  # fmt: skip
            continue
        others.append((label, other_samples))
    train, val, test = (samples.rows(s) for s in ("train", "val", "test"))
    if len(train) == 0 or len(test) == 0:
        raise ModelZooError(f"{zoo.path}: the train or test split has no recorded states")
    if len(val) == 0:
        notes.append(f"splits {list(fractions)} (seed {split_seed}) leave no validation states: "
                     "no probe could choose its regularisation (each took its weakest), so these "
                     "numbers may be far from a tuned probe's; pass --splits with a validation "
                     "fraction")  # fmt: skip
    structure = WeightStructure.of(zoo)
    rows, predictions, seconds = [], [], {}
    bar = tqdm(total=len(features) * len(chosen), desc="probe", unit="fit", disable=not progress)
    for name in features:
        start = time.perf_counter()
        if name.startswith("embedding:"):
            record = encoders[name].config["zoo"]
            notes += _embedding_notes(name, record, zoo, fractions, split_seed)
        context = FeatureContext(samples.weights[train], structure, components, fit_samples, seed,
                                 encoder=encoders.get(name))  # fmt: skip
        transform = build_transform(name, context)
        x = transform(samples.weights)
        x_others = [(split, s, _ood_transform(transform, split, s)) for split, s in others]
        shared = {}  # continuous targets known on every row share one ridge fit per alpha
        if probe == "linear":
            together = [t for t, k in chosen.items()
                        if k == "continuous" and samples.table[t].notna().all()]  # fmt: skip
            if together:
                y_all = samples.table[together].to_numpy(dtype=float)
                fitted_all = fit_ridges(x[train], y_all[train], x[val], y_all[val])
                shared = dict(zip(together, fitted_all))
        for target, kind in chosen.items():
            bar.set_postfix_str(f"{name} -> {target}")
            y = samples.table[target].to_numpy()
            known = pd.notna(y)
            tr, va, te = (r[known[r]] for r in (train, val, test))
            y_fit = y.astype(float) if kind == "continuous" else y.astype(str)
            fitted = shared.get(target) or fit_probe(probe, kind, x[tr], y_fit[tr], x[va],
                                                     y_fit[va], seed)  # fmt: skip
            rows.append((target, name, probe, "setting", "val", fitted.setting))
            evaluations = [
                ("val", samples.table, x, va, y_fit),
                ("test", samples.table, x, te, y_fit),
            ]
            for split, other, x_other in x_others:
                if target not in other.table.columns:
                    notes.append(f"{split}: no target {target}")
                    continue
                y_other = other.table[target].to_numpy()
                keep = np.flatnonzero(
                    pd.notna(y_other) & (other.table["split"].to_numpy() == "test")
                )
                y_other = y_other.astype(float) if kind == "continuous" else y_other.astype(str)
                evaluations.append((split, other.table, x_other, keep, y_other))
            for split, table, x_split, index, truth in evaluations:
                predicted = fitted.predict(x_split[index])
                for metric, value in score(kind, truth[index], predicted).items():
                    rows.append((target, name, probe, metric, split, value))
                if split != "val":
                    predictions.append(pd.DataFrame({
                        "features": name, "target": target, "split": split,
                        "model_id": table["model_id"].to_numpy()[index],
                        "epoch": table["epoch"].to_numpy()[index],
                        "true": truth[index], "predicted": predicted}))  # fmt: skip
            bar.update(1)
        seconds[name] = time.perf_counter() - start
    bar.close()
    results = pd.DataFrame(rows, columns=COLUMNS)
    predicted = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    return ProbeResult(results, predicted, notes, seconds, chosen)


def probe(zoo, features: Sequence[str] = DEFAULT_FEATURES, targets: Sequence[str] | None = None,
          probe: str = "linear", **options) -> pd.DataFrame:  # fmt: skip
    """The long results table (target, features, probe, metric, split, value); see ``run_probe``."""
    return run_probe(zoo, features, targets, probe, **options).results
