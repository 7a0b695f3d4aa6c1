"""The refactor gate (issue 14): the analysis output is identical, JSON text for JSON text, to the
output stored in ``data/refactor_gate/`` before the refactor (``tonuslab.validation.gate``)."""

from __future__ import annotations

import difflib

import pytest

from tonuslab.validation import gate


def _assert_identical(name: str) -> None:
    stored = (gate.GATE_DIR / name).read_text()
    now = gate.compute(name)
    if now != stored:
        diff = "".join(
            list(
                difflib.unified_diff(
                    stored.splitlines(True), now.splitlines(True), "stored", "now", n=2
                )
            )[:60]
        )
        pytest.fail(f"{name}: analysis output changed\n{diff}")


def test_sample_sessions_unchanged():
    _assert_identical("samples.json")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stretch_seeds.json", "hreflex_seeds.json"])
def test_validation_seeds_unchanged(name):
    _assert_identical(name)


def test_dumps_is_exact_and_deterministic():
    x = {"b": [0.1 + 0.2, float("nan"), float("inf"), -float("inf")], "a": 1, "file": "/x"}
    text = gate.dumps(x)
    assert text.index('"a"') < text.index('"b"')
    assert "0.30000000000000004" in text and '"NaN"' in text and '"-Infinity"' in text
    assert '"file"' not in text
    assert gate.dumps({"b": [0.30000000000000004]}) != gate.dumps({"b": [0.3]})
