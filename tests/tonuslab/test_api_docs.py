"""The examples of docs/api.md and the doctests of tonuslab's modules run as written."""

import doctest
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_api_md_examples_run():
    result = doctest.testfile(
        str(ROOT / "docs" / "api.md"), module_relative=False, optionflags=FLAGS, verbose=False
    )
    assert result.attempted > 30
    assert result.failed == 0


@pytest.mark.parametrize(
    "module", ["tonuslab.profile", "tonuslab.io_import", "tonuslab.stretch_uncertainty"]
)
def test_module_doctests(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0
