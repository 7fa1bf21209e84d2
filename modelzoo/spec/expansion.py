"""Expansion of a spec into runs, deterministically: the grid is a cartesian product in the order
its keys are written (first key slowest), every configuration is trained with every seed of
``seeds``, model ids count up from 0 in that order. The same spec always gives the same runs,
ids and seeds."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import SpecError
from .records import Run, Spec, canonical_json, resolve_stored_epochs

# --------------------------------------------------------------------------- expansion


def configurations(spec: Spec) -> list[dict[str, Any]]:
    """The grid's cartesian product, in written key order (first key varies slowest)."""
    grid = spec.resolved["grid"]
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def seeds_per_configuration(spec: Spec, n_configurations: int) -> list[list[int]]:
    seeds = spec.resolved["seeds"]
    if seeds.get("values") is not None:
        return [list(seeds["values"])] * n_configurations
    if seeds.get("range") is not None:
        first, last = seeds["range"]
        return [list(range(first, last + 1))] * n_configurations
    if seeds.get("fixed") is not None:
        return [list(range(1, seeds["fixed"] + 1))] * n_configurations
    rng = np.random.default_rng(seeds["meta_seed"])
    drawn = []
    for _ in range(n_configurations):
        chosen: list[int] = []
        while len(chosen) < seeds["random"]:
            value = int(rng.integers(seeds["low"], seeds["high"] + 1))
            if value not in chosen:
                chosen.append(value)
        drawn.append(chosen)
    return drawn


def factor_column(grid_key: str) -> str:
    section, _, leaf = grid_key.partition(".")
    return leaf if section == "training" else f"{section}_{leaf}"


def expand(spec: Spec) -> list[Run]:
    """All runs of the zoo in model-id order."""
    configs = configurations(spec)
    seed_lists = seeds_per_configuration(spec, len(configs))
    runs: list[Run] = []
    for config, seeds in zip(configs, seed_lists):
        sections = {
            s: copy.deepcopy(spec.resolved[s]) for s in ("dataset", "architecture", "training")
        }
        for grid_key, value in config.items():
            section, _, leaf = grid_key.partition(".")
            sections[section][leaf] = value
        epochs = sections["training"]["epochs"]
        stored = resolve_stored_epochs(spec.resolved["store"]["epochs"], epochs)
        if not stored or max(stored) > epochs:
            raise SpecError(f"{spec.path}: store.epochs: stored epochs {list(stored)} exceed "
                            f"training.epochs ({epochs}) of a grid configuration")  # fmt: skip
        factors = {factor_column(k): v for k, v in config.items()}
        for seed in seeds:
            runs.append(
                Run(
                    model_id=len(runs),
                    seed=int(seed),
                    dataset=sections["dataset"],
                    architecture=sections["architecture"],
                    training=sections["training"],
                    stored_epochs=stored,
                    factors=factors,
                )
            )
    return runs


def runs_by_shape(runs: Iterable[Run]) -> Mapping[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.shape_key, []).append(run)
    return groups


def sample_runs(runs: list[Run], count: int, seed: int = 0) -> list[Run]:
    """``count`` runs spread over the grid, deterministically (``--sample N``).

    On a full factorial plan (every combination of the varying values, each with the same number
    of seeds; the seed position is one more factor) the runs are put in a balanced order in which
    every prefix holds each value of every factor equally often, within one, and the first
    ``count`` are taken: with ``count`` at least the number of values of a factor, every value of
    it appears. ``seed`` permutes the values of each factor, so the corner the order starts from
    is not privileged. Other plans fall back to a greedy pick of the least-picked values.
    Returned in model-id order.
    """
    if count >= len(runs):
        return list(runs)
    columns = [run.columns() for run in runs]
    varying = sorted(
        {c for row in columns for c in row if c != "seed"}
        - {c for c in columns[0] if all(r.get(c) == columns[0][c] for r in columns)}
    )
    config_rank: dict[str, int] = {}  # the run's position among the seeds of its configuration
    ranks = []
    for row in columns:
        key = canonical_json({c: row.get(c) for c in varying})
        ranks.append(config_rank.get(key, 0))
        config_rank[key] = ranks[-1] + 1
    keys = [(*(canonical_json((c, row.get(c))) for c in varying), f"rank:{rank}")
            for row, rank in zip(columns, ranks)]  # fmt: skip
    rng = np.random.default_rng(seed)
    values = [sorted({key[j] for key in keys}) for j in range(len(varying) + 1)]
    if len(set(keys)) == len(keys) == math.prod(len(v) for v in values):
        for factor in values:
            factor[:] = [factor[i] for i in rng.permutation(len(factor))]
        index_of = {key: i for i, key in enumerate(keys)}
        order = balanced_order([len(v) for v in values])[:count]
        chosen = {index_of[tuple(values[j][v] for j, v in enumerate(combo))] for combo in order}
    else:
        chosen = _greedy_pick(keys, count, rng.permutation(len(runs)))
    return [runs[i] for i in sorted(chosen)]


def balanced_order(sizes: list[int]) -> list[tuple[int, ...]]:
    """Every combination of ``range(n)`` for n in ``sizes``, once, ordered so that each aligned
    block of ``n`` positions holds every value of that factor once: any prefix is balanced.

    Built one factor at a time: the order of the earlier factors (length P) repeats, and the new
    factor's value at position t is ``(t + t // lcm(P, n)) mod n``; the shift per lcm-block makes
    the combinations distinct (the block index is the new value minus the old, modulo gcd(P, n)).
    """
    order: list[tuple[int, ...]] = [()]
    period = 1
    for n in sizes:
        block = math.lcm(period, n)
        order = [order[t % period] + ((t + t // block) % n,) for t in range(period * n)]
        period *= n
    return order


def _greedy_pick(keys: list[tuple[str, ...]], count: int, tie_order: np.ndarray) -> set[int]:
    """Runs whose values were picked least so far, for plans that are not a full grid."""
    counts: dict[str, int] = {}
    chosen: set[int] = set()
    for _ in range(count):
        best, best_score = -1, None
        for index in tie_order:
            if index in chosen:
                continue
            score = sum(counts.get(k, 0) for k in keys[index])
            if best_score is None or score < best_score:
                best, best_score = int(index), score
                if score == 0:
                    break
        chosen.add(best)
        for k in keys[best]:
            counts[k] = counts.get(k, 0) + 1
    return chosen
