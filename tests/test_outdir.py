"""The --out rules shared by train-ae, probe, fidelity and sample (modelzoo/outdir.py): checked
against the file system itself (what exists afterwards), never against the module's own output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
