"""Where a science command's results go: a new folder, checked before any work starts.

train-ae, probe, fidelity and sample each write one folder (``--out``), filled under a sibling
work folder and renamed into place at the end. A destination that cannot become that folder must
be refused in one line *before* an hour of training, not by a traceback after it; one set of
rules here, so every command refuses the same things in the same words.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ModelZooError


def new_folder(out: str | Path, *, allow_empty: bool = False, flag: str = "--out") -> Path:
    """The absolute path to create for ``out``, after refusing what cannot become a new folder:
    a symlink (the final rename would replace the link, not fill its target), a file, an existing
    folder (an empty one only with ``allow_empty``), a name that is no name (``.``, ``..``), or a
    place where no folder can be created (a file on the way, no permission, a read-only mount).

    The parent is resolved here, so ``a/../b`` means ``./b`` without creating ``a/`` on the way
    (``mkdir -p`` would)."""
    given = Path(out).expanduser()
    if given.name in ("", ".", ".."):
        raise ModelZooError(f"{flag} {given}: name a new folder (e.g. runs/first), not "
                            f"{str(given) or 'an empty path'}")  # fmt: skip
    if given.is_symlink():  # a dangling one too
        raise ModelZooError(f"{flag} {given}: is a symbolic link; choose a new folder")
    if given.exists():
        if not given.is_dir():
            raise ModelZooError(f"{flag} {given}: is a file; choose a new folder")
        if not allow_empty:
            raise ModelZooError(f"{flag} {given}: already exists; choose a new folder")
        if any(given.iterdir()):
            raise ModelZooError(f"{flag} {given}: exists and is not an empty folder")
    target = given.parent.resolve() / given.name
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ModelZooError(f"{flag} {given}: cannot be created ({ancestor} is a file, not a folder)")
    try:  # the permission bits do not tell everything (read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(prefix=".modelzoo-out-check-", dir=ancestor))
    except OSError as error:
        raise ModelZooError(f"{flag} {given}: cannot be created in {ancestor} "
                            f"({error.strerror or error})") from None  # fmt: skip
    return target
