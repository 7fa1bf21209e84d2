"""Fidelity: the statistics the papers publish about their zoos, computed for ours and printed
beside theirs (``fidelity(zoo)``; ``modelzoo fidelity ZOO``). Builds on ``modelzoo probe``."""

from .api import FidelityReport, fidelity, resolve_paper
from .published import PAPER_ZOOS, ZOO_OF_SPEC, Published, register

__all__ = ["PAPER_ZOOS", "ZOO_OF_SPEC", "FidelityReport", "Published", "fidelity", "register",
           "resolve_paper"]  # fmt: skip
