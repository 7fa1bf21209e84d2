"""The docs describe what the code does: every spec key is documented, the storage example runs."""

from __future__ import annotations

import re
from pathlib import Path

from modelzoo.run import generate
from modelzoo.spec import describe_fields, load_spec

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_spec_key_is_documented() -> None:
    text = (DOCS / "specs.md").read_text()
    for key, _ in describe_fields():
        assert f"`{key}`" in text, f"docs/specs.md does not document {key}"


def test_storage_doc_reads_a_zoo_without_modelzoo(
    tiny_spec: Path, tmp_path: Path, monkeypatch
) -> None:
    generate(load_spec(tiny_spec, ["seeds.range=[1, 8]"]), tmp_path / "storage", executor="local")
    code = re.findall(r"```python\n(.*?)```", (DOCS / "storage.md").read_text(), re.S)[-1]
    code = code.replace('"storage/tetris_seed"', repr(str(tmp_path / "storage" / "tiny_tetris")))
    code = code.replace("index(75)", "index(3)")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/storage.md", "exec"), namespace)
    assert namespace["flat"].shape == (100,)
    assert namespace["tensors"]["fc1.weight"].shape == (5, 16)


def test_storage_doc_layout_example_matches_cnn_small() -> None:
    from modelzoo.nets import build_model, parameter_layout

    text = (DOCS / "storage.md").read_text()
    for slot in parameter_layout(build_model("cnn_small", (1, 28, 28), 10)):
        assert f"{slot.name} [{', '.join(map(str, slot.shape))}] @{slot.offset}" in text
