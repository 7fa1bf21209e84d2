"""A writer lock held by another, live process, for tests of what a second run on a busy
folder is told (the holder's pid) and that it leaves the folder alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path) -> Iterator[subprocess.Popen]:
    """Yield a child process that holds ``folder``'s writer lock until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from modelzoo.store.lock import WriterLock; "
        f"lock = WriterLock.acquire({str(folder)!r}); print('held', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
