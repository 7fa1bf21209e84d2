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

# the longest suffix a command adds to the folder's name for its work folder
# (probe: ".NAME.partial-PID"; train-ae and sample: "NAME.partial")
WORK_SUFFIX_BYTES = len(".") + len(".partial-") + 10


def new_folder(out: str | Path, *, allow_empty: bool = False, flag: str = "--out") -> Path:
    """The absolute path to create for ``out``, after refusing what cannot become a new folder:
    a symlink (the final rename would replace the link, not fill its target), a file, an existing
    folder (an empty one only with ``allow_empty``, and not a mount point, which cannot be
    replaced), a name that is no name (``.``, ``..``), one too long for its work folder or not
    writable as UTF-8 (the Parquet files record it), or a place where no folder can be created
    (a file on the way, no permission, a read-only mount).

    The parent is resolved first and every check is made on the result, so ``a/../b`` means
    ``./b`` without creating ``a/`` on the way (``mkdir -p`` would), as the OS will read it."""
    if str(out) == "":
        raise ModelZooError(f"{flag} '': name a new folder (e.g. runs/first)")
    given = Path(out)
    if given.name in ("", ".", ".."):
        raise ModelZooError(f"{flag} {given}: name a new folder (e.g. runs/first), not {given}")
    try:
        target = given.expanduser().parent.resolve() / given.name
        _check_target(target, given, allow_empty, flag)
    except (OSError, RuntimeError) as error:  # name too long, symlink loop, unknown ~user
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ModelZooError(f"{flag} {given}: cannot be used ({reason})") from None
    return target


def _check_target(target: Path, given: Path, allow_empty: bool, flag: str) -> None:
    try:
        str(target).encode("utf-8")
    except UnicodeEncodeError:
        raise ModelZooError(f"{flag} {given}: the path is not valid UTF-8; choose a plain "
                            "name") from None  # fmt: skip
    if target.is_symlink():  # a dangling one too
        raise ModelZooError(f"{flag} {given}: is a symbolic link; choose a new folder")
    if target.exists():
        if not target.is_dir():
            raise ModelZooError(f"{flag} {given}: is a file; choose a new folder")
        if not allow_empty:
            raise ModelZooError(f"{flag} {given}: already exists; choose a new folder")
        if any(target.iterdir()):
            raise ModelZooError(f"{flag} {given}: exists and is not an empty folder")
        if os.path.ismount(target):
            raise ModelZooError(f"{flag} {given}: is a mount point, which cannot be replaced; "
                                "name a new folder inside it")  # fmt: skip
    work = target.with_name(target.name + ".partial")  # train-ae and sample fill and resume it
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise ModelZooError(f"{flag} {given}: {work} is in the way (a symbolic link or a file, not "
                            "an interrupted run's folder); remove it or choose another name")  # fmt: skip
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ModelZooError(f"{flag} {given}: cannot be created ({ancestor} is a file, not a folder)")
    try:
        limit = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(target.name)) + WORK_SUFFIX_BYTES > limit:
        raise ModelZooError(f"{flag} {given}: the folder name is too long (at most "
                            f"{limit - WORK_SUFFIX_BYTES} bytes here)")  # fmt: skip
    try:  # the permission bits do not tell everything (read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(prefix=".modelzoo-out-check-", dir=ancestor))
    except OSError as error:
        raise ModelZooError(f"{flag} {given}: cannot be created in {ancestor} "
                            f"({error.strerror or error})") from None  # fmt: skip
