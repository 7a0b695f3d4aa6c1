"""Style is part of the build: ruff lint and format pass on the whole tree; no function in
``dsp/`` or ``tonuslab/`` is longer than 200 lines (issue 14)."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_lint():
    proc = _ruff("check", ".")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_ruff_format():
    proc = _ruff("format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-3000:]


#: Longest function (``def`` line to last line, decorators excluded) allowed in dsp/ and tonuslab/.
MAX_FUNCTION_LINES = 200


def _long_functions(root: pathlib.Path, limit: int, base: pathlib.Path = ROOT) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_long_function_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(12))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert _long_functions(tmp_path, 10, base=tmp_path) == ["m.py:5 long (13 lines)"]


def test_no_function_over_200_lines():
    long = [
        f for pkg in ("dsp", "tonuslab") for f in _long_functions(ROOT / pkg, MAX_FUNCTION_LINES)
    ]
    assert not long, "split these along their stages:\n" + "\n".join(long)
