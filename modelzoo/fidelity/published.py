"""What the papers publish about their zoos: the numbers a zoo of ours is compared with.

One entry per published zoo, each number with the table it comes from (../shared/seeds/: 001 the
2021 hyper-representation paper, 003 the 2022 generative one, 004 the 2025 structure-and-behaviour
one). Probe numbers are test-split R^2 in % of a linear probe (ridge) on the raw weights ``W`` or
the layer statistics ``sW``; for categorical targets (init, activation) seed 001 reports the
accuracy of a linear classifier. Accuracy numbers are test accuracies in %.

A new published zoo is one ``register`` call. Bundled specs name their paper zoo in ``ZOO_OF_SPEC``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Published:
    """A paper's zoo: probe R^2 / accuracy, weight variances and accuracy figures, with sources."""

    name: str
    source: str  # the tables every number below comes from
    probes: dict[tuple[str, str], float] = field(default_factory=dict)  # (features, target) -> %
    variance: dict[str, float] = field(default_factory=dict)  # VAR, VARc (seed 001 Table 4)
    accuracy: dict[tuple[str, int | None], float] = field(default_factory=dict)
    # ("mean" | "std" | "max" | "min", epoch or None = over all states) -> % test accuracy
    notes: tuple[str, ...] = ()


PAPER_ZOOS: dict[str, Published] = {}


def register(zoo: Published) -> Published:
    PAPER_ZOOS[zoo.name] = zoo
    return zoo


def _probes(targets: tuple[str, ...], w: tuple, sw: tuple) -> dict[tuple[str, str], float]:
    table = {("W", t): v for t, v in zip(targets, w) if v is not None}
    table.update({("sW", t): v for t, v in zip(targets, sw) if v is not None})
    return table


F1 = ("f1_0", "f1_1", "f1_2", "f1_3")
register(Published(
    "TETRIS-SEED", "seed 001, Table 5 (left)",
    _probes(("epoch", "test_acc", "gap", *F1),
            (55.4, 49.1, 43.9, 26.6, 41.4, 41.5, 53.9),
            (96.4, 86.9, 81.0, 62.5, 63.1, 60.9, 75.2)),
))
register(Published(
    "TETRIS-HYP", "seed 001, Table 5 (right); init and activation are classifier accuracies",
    _probes(("epoch", "test_acc", "gap", "lr", "activation", "init"),
            (2.8, 11.0, 12.9, -4.7, 74.7, 38.5),
            (16.3, 80.2, 79.2, 53.4, 73.6, 46.6)),
))
_TABLE4 = ("epoch", "test_acc", "gap", "init")
register(Published(
    "MNIST-SEED", "seed 001, Tables 4 and 13; accuracy range from Appendix D (Figure 14 text)",
    _probes(_TABLE4, (84.5, 91.3, 56.9, None), (97.7, 98.7, 66.2, None)),
    {"VAR": 0.234, "VARc": 0.234},
    {("min", None): 20.0, ("max", None): 95.0},
    ("seed 001 gives the accuracy range of MNIST-SEED as [0.2, 0.95] over its model states",),
))
# seed 001 Table 4: zoo, (W, s(W)) for epoch / accuracy / gap / init, VAR, VARc
for _name, _w, _sw, _var, _varc in (
    ("MNIST-HYP-1-FIX-SEED", (7.2, 73.6, 55.3, 87.7), (6.2, 72.9, 42.1, 63.3), 0.155, 0.101),
    ("MNIST-HYP-1-RAND-SEED", (-34.0, -6.0, -36.0, 38.3), (0.5, 60.1, 31.1, 56.1), 0.152, 0.164),
    ("MNIST-HYP-5-FIX-SEED", (-2.7, 57.7, 37.8, 80.6), (7.4, 75.1, 36.7, 54.5), 0.091, 0.094),
    ("MNIST-HYP-5-RAND-SEED", (-14.0, -13.0, -3.2, 35.5), (9.6, 74.5, 46.1, 47.2), 0.092, 0.100),
):
    register(Published(_name, "seed 001, Table 4 (init: classifier accuracy)",
                       _probes(_TABLE4, _w, _sw), {"VAR": _var, "VARc": _varc}))
register(Published(
    "FASHION-SEED", "seed 001, Table 13",
    _probes(("epoch", "test_acc", "gap"), (87.5, 88.5, 70.4), (97.0, 97.9, 81.4)),
))
register(Published(
    "SVHN-SEED", "seed 001, Appendix D (Figure 14 text): accuracy range [0.2, 0.75]",
    accuracy={("min", None): 20.0, ("max", None): 75.0},
))


def _trained_from_scratch(name: str, means: tuple, stds: tuple) -> Published:
    """Seed 003, Table 1, rows B_T: models trained from scratch as the zoo's models were, at
    epochs 1, 25 and 50 (mean and std of test accuracy in %)."""
    accuracy = {}
    for epoch, mean, std in zip((1, 25, 50), means, stds):
        accuracy[("mean", epoch)], accuracy[("std", epoch)] = mean, std
    return Published(name, "seed 003, Table 1, B_T rows (models trained from scratch like the "
                     "zoo's, epochs 1 / 25 / 50)", accuracy=accuracy)  # fmt: skip


register(_trained_from_scratch("MNIST-2022", (20.6, 83.3, 91.1), (1.6, 2.6, 2.6)))
register(_trained_from_scratch("SVHN-2022", (19.4, 66.7, 70.7), (0.6, 8.5, 8.8)))
register(_trained_from_scratch("CIFAR10-2022", (27.5, 46.1, 48.7), (2.1, 1.3, 1.4)))
register(_trained_from_scratch("STL10-2022", (15.4, 35.0, 39.0), (1.8, 1.3, 1.0)))
for _name, _best in (("SVHN-CNN-MEDIUM", 91.0), ("CIFAR10-CNN-MEDIUM", 70.1),
                     ("EUROSAT-CNN-MEDIUM", 88.5)):  # fmt: skip
    register(Published(_name, "seed 004, Table 2, column ZOO (best model of the zoo)",
                       accuracy={("max", None): _best}))  # fmt: skip

# bundled spec name -> the paper zoo it reproduces
ZOO_OF_SPEC = {
    "tetris_seed": "TETRIS-SEED",
    "tetris_hyp": "TETRIS-HYP",
    "mnist_seed": "MNIST-SEED",
    "mnist_hyp_1_fix": "MNIST-HYP-1-FIX-SEED",
    "mnist_hyp_1_rand": "MNIST-HYP-1-RAND-SEED",
    "mnist_hyp_5_fix": "MNIST-HYP-5-FIX-SEED",
    "mnist_hyp_5_rand": "MNIST-HYP-5-RAND-SEED",
    "fashion_seed": "FASHION-SEED",
    "svhn_seed": "SVHN-2022",
    "cifar10_seed": "CIFAR10-2022",
    "stl10_seed": "STL10-2022",
    "mz_mnist_seed": "MNIST-2022",
    "mz_svhn_seed": "SVHN-2022",
    "mz_cifar10_small_seed": "CIFAR10-2022",
    "mz_stl10_small_seed": "STL10-2022",
    "svhn_cnn_medium": "SVHN-CNN-MEDIUM",
    "cifar10_cnn_medium": "CIFAR10-CNN-MEDIUM",
    "eurosat_cnn_medium": "EUROSAT-CNN-MEDIUM",
}
