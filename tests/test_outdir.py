"""The --out rules shared by train-ae, probe, fidelity and sample (modelzoo/outdir.py): checked
against the file system itself (what exists afterwards), never against the module's own output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lock_holder import lock_held_elsewhere

from modelzoo.errors import ModelZooError
from modelzoo.outdir import new_folder


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_new_folder_is_returned_absolute_and_nothing_is_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = new_folder("runs/deep/first")
    assert got == tmp_path / "runs" / "deep" / "first" and got.is_absolute()
    assert _tree(tmp_path) == set()  # the write test leaves no folder behind


def test_dotdot_through_a_missing_folder_does_not_create_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = new_folder("missing/../b")
    assert got == Path(os.path.normpath(tmp_path / "b"))
    assert not (tmp_path / "missing").exists()


def test_dotdot_through_a_symlinked_folder_follows_the_link(tmp_path, monkeypatch):
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "inner")
    monkeypatch.chdir(tmp_path)
    # the OS resolves link/.. to real/, not to ./ ; the returned path must agree with it
    assert new_folder("link/../out") == (tmp_path / "real" / "out")


@pytest.mark.parametrize("name", [".", "..", "x/..", ""])
def test_names_that_name_no_new_folder_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelZooError, match="name a new folder"):
        new_folder(name)


def test_existing_things_are_refused_with_what_they_are(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = [(tmp_path / "full", {}, "already exists"),
             (tmp_path / "empty", {}, "already exists"),
             (tmp_path / "full", {"allow_empty": True}, "not an empty folder"),
             (tmp_path / "afile", {}, "is a file"),
             (tmp_path / "dangling", {}, "symbolic link"),
             (tmp_path / "afile" / "sub", {}, f"{tmp_path / 'afile'} is a file, not a folder")]  # fmt: skip
    for out, options, message in cases:
        with pytest.raises(ModelZooError, match="^--out ") as error:
            new_folder(out, **options)
        assert message in str(error.value) and "\n" not in str(error.value)
    assert new_folder(tmp_path / "empty", allow_empty=True) == tmp_path / "empty"
    assert (tmp_path / "full" / "x").read_text() == "keep" and (tmp_path / "afile").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_an_unwritable_place_is_refused_before_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ModelZooError, match="cannot be created in"):
            new_folder(locked / "a" / "b")
    finally:
        locked.chmod(0o700)
    assert _tree(locked) == set()


def test_what_lies_behind_missing_dotdot_is_checked_too(tmp_path, monkeypatch):
    """``missing/../run`` is ``./run`` to the OS: an existing ``run`` must be refused as if it had
    been named directly (the lookup through ``missing`` fails, so checking the typed path would
    see nothing there and let the command fail after its work)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name, message in (("full", "not an empty folder"), ("afile", "is a file"),
                          ("dangling", "symbolic link")):  # fmt: skip
        with pytest.raises(ModelZooError, match=message):
            new_folder(f"missing/../{name}", allow_empty=True)
    assert not (tmp_path / "missing").exists()


def test_paths_the_os_cannot_use_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    cases = [("x" * 300, "cannot be used"),  # longer than any file name
             ("y" * 250, "folder name is too long"),  # fits, but its work folder would not
             ("loop/run", "cannot be used"),
             ("~no-such-user-here/run", "cannot be used"),
             (os.fsdecode(b"r\xffn"), "not valid UTF-8")]  # fmt: skip
    for out, message in cases:
        with pytest.raises(ModelZooError, match=message) as error:
            new_folder(out)
        assert "\n" not in str(error.value)
    assert new_folder("z" * 200) == tmp_path / ("z" * 200)


def test_a_work_folder_in_the_way_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "run.partial").symlink_to(tmp_path / "real")
    (tmp_path / "other.partial").write_text("x")
    for name in ("run", "other"):
        with pytest.raises(ModelZooError, match=r"\.partial is in the way"):
            new_folder(tmp_path / name)
    (tmp_path / "resumable.partial").mkdir()  # an interrupted run's folder: resumed, not refused
    assert new_folder(tmp_path / "resumable") == tmp_path / "resumable"


def _killed_run(work, command, resumable, dead_pid=None):
    """The work folder a kill -9 leaves: a marker, half-written files, maybe a dead pid's lock."""
    import json
    import socket

    from modelzoo.outdir import COMMAND_FILE
    from modelzoo.store.lock import LOCK_FILE, _boot_id

    work.mkdir()
    (work / "half.csv").write_text("half")
    (work / "plots").mkdir()
    if command:
        (work / COMMAND_FILE).write_text(json.dumps({"command": command, "resumable": resumable}))
    if dead_pid:
        (work / LOCK_FILE).write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                                  "started": "x", "token": "t", "boot": _boot_id()}))


def test_probe_takes_over_a_killed_runs_work_folder_and_refuses_a_live_one(tmp_path):
    """probe and fidelity fill ``OUT.partial`` under the writer lock: a kill -9's folder (a
    half-written file, with or without a lock naming a dead pid) of a command that does not
    resume is taken over and emptied, so its leftovers never reach OUT; one a live process
    holds is refused naming it; an empty OUT is replaced."""
    import subprocess
    import sys

    from modelzoo.probe.report import atomic_folder

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip
    for name, command, pid in (("res", "probe", None), ("again", "sample", dead)):
        _killed_run(tmp_path / f"{name}.partial", command, False, pid)
        with atomic_folder(tmp_path / name) as work:
            (work / "results.csv").write_text("whole")
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["results.csv"]
        assert not (tmp_path / f"{name}.partial").exists()
    (tmp_path / "empty").mkdir()
    with atomic_folder(tmp_path / "empty") as work:
        (work / "results.csv").write_text("whole")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["results.csv"]

    with lock_held_elsewhere(tmp_path / "busy.partial") as holder, \
            pytest.raises(ModelZooError, match=f"pid {holder.pid} "), atomic_folder(tmp_path / "busy"):  # fmt: skip
        pass
    assert not (tmp_path / "busy").exists()


def test_files_no_command_claims_are_never_emptied(tmp_path):
    """A .partial without a readable marker (a sparsify's resumable zoo, a hand-made folder, a
    garbled marker) is refused in one line by every command and left as it was; the lock taken
    to look at it is given back."""
    import shutil

    from modelzoo.outdir import COMMAND_FILE, claimed
    from modelzoo.store.lock import LOCK_FILE

    for marker in (None, "", "\xff\xfe", "[1]"):
        work = tmp_path / "run.partial"
        _killed_run(work, None, False)
        if marker is not None:
            (work / COMMAND_FILE).write_bytes(marker.encode("latin-1"))
        for command, resumable in (("probe", False), ("train-ae", True)):
            with pytest.raises(ModelZooError, match="no modelzoo command claims") as error, \
                    claimed(tmp_path / "run", command, keep_on_failure=resumable):  # fmt: skip
                pass
            assert "\n" not in str(error.value)
        assert (work / "half.csv").read_text() == "half" and not (work / LOCK_FILE).exists()
        shutil.rmtree(work)


def test_a_finished_run_is_named_as_one_however_it_is_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("format: x\n")
    (tmp_path / "other").mkdir()
    for out in ("run", "missing/../run", tmp_path / "run"):
        with pytest.raises(ModelZooError, match="holds a finished run"):
            new_folder(out, finished="config.yaml")
    with pytest.raises(ModelZooError, match="already exists; choose") as error:
        new_folder("other", finished="config.yaml")
    assert "finished" not in str(error.value)
    assert not (tmp_path / "missing").exists()


def test_one_command_never_empties_or_resumes_anothers_work_folder(tmp_path):
    """An interrupted train-ae's OUT.partial (its hour of training) is refused, not emptied, by a
    probe, fidelity or sample on the same --out, and train-ae still resumes it; the finished
    folder carries neither the lock nor the command marker."""
    from modelzoo.outdir import COMMAND_FILE, claimed
    from modelzoo.probe.report import atomic_folder

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), claimed(out, "train-ae", keep_on_failure=True) as work:
        (work / "checkpoint.safetensors").write_text("an hour")
        raise KeyboardInterrupt
    for command in ("probe", "fidelity"):
        with pytest.raises(ModelZooError, match=r"interrupted `modelzoo train-ae` run") as error, \
                atomic_folder(out, command):  # fmt: skip
            pass
        assert "\n" not in str(error.value)
    with pytest.raises(ModelZooError, match="train-ae"), claimed(out, "sample", keep_on_failure=False):
        pass
    assert (out.with_name("run.partial") / "checkpoint.safetensors").read_text() == "an hour"
    assert not (out.with_name("run.partial") / "writer.lock").exists()
    with claimed(out, "train-ae", keep_on_failure=True) as work:
        assert (work / "checkpoint.safetensors").read_text() == "an hour"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors"]
    assert not (out / COMMAND_FILE).exists()
    # a killed probe's leftovers are nobody's to resume: train-ae clears them and starts afresh
    _killed_run(tmp_path / "fresh.partial", "probe", False)
    with claimed(tmp_path / "fresh", "train-ae", keep_on_failure=True) as work:
        assert sorted(p.name for p in work.iterdir()) == [COMMAND_FILE, "writer.lock"]
