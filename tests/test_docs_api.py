"""docs/api.md stays true: every ``python`` block runs, in order, on a fresh tetris_seed zoo."""

from __future__ import annotations

import re
from pathlib import Path

from test_zoo_helpers import seed_zoo

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
DOC_ZOO = '"storage/tetris_seed"'


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_api_examples_run(capsys) -> None:
    blocks = python_blocks(API_DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6 and DOC_ZOO in blocks[0]
    namespace: dict = {"__name__": "docs_api"}
    for number, block in enumerate(blocks):
        code = compile(
            block.replace(DOC_ZOO, repr(str(seed_zoo()))), f"docs/api.md[python #{number}]", "exec"
        )
        exec(code, namespace)
    assert "tetris_seed" in capsys.readouterr().out


def test_every_public_verb_is_documented() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    verbs = [
        "open_zoo",
        "select",
        "weights",
        "state_dict",
        "model(",
        "data(",
        "evaluate",
        "ZooDataset(",
        "split(",
        "detokenize",
        "denormalize",
        "set_epoch",
        "PermuteUnits",
        "RandomErase",
        "GaussianNoise",
        "modelzoo info",
        "modelzoo verify",
        "factors()",
        "WeightStructure.of",
        "settings()",
    ]
    assert [v for v in verbs if v not in text] == []
