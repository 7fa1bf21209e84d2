"""The test seam for kill-and-resume tests: simulated ``kill -9`` at named points of a commit.

A store is only trustworthy if every interruption leaves it valid, so the tests kill the writer at
each stage of a commit and check that rerunning the command resumes exactly. Waiting for a real
``kill -9`` to land between two particular syscalls is not reproducible; instead the writer calls
:func:`crash_point` at each stage, and ``MODELZOO_CRASH_AT=stage:n`` makes the n-th pass through
``stage`` end the process at once with ``os._exit(137)`` (no cleanup, no buffer flush: what a
SIGKILL leaves behind). Stages: ``mid-shard`` (shard half-written under its temporary name),
``after-shard`` (shard sealed, not yet committed), ``between-tables`` (models table replaced,
metrics table not), ``before-manifest`` (both tables replaced, manifest not). Unset, it costs one
dictionary lookup per commit and does nothing.
"""

from __future__ import annotations

import os

CRASH_ENV = "MODELZOO_CRASH_AT"
STAGES = ("mid-shard", "after-shard", "between-tables", "before-manifest")
_passes: dict[str, int] = {}


def crash_point(stage: str) -> None:
    """End the process like ``kill -9`` if ``$MODELZOO_CRASH_AT`` names this pass of ``stage``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name == stage:
        _passes[stage] = _passes.get(stage, 0) + 1
        if _passes[stage] >= int(count or 1):
            os._exit(137)
