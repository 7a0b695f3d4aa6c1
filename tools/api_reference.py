"""Generate ``docs/api-reference.md`` from the docstrings of the public modules.

Run ``python tools/api_reference.py`` after changing a public signature or docstring;
``tests/test_api_reference.py`` fails while the committed page differs from what this prints.

The page is read from the source with :mod:`ast` (nothing is imported, so optional extras such as
pylsl or bumble need not be installed, and no module runs). Public means: a module whose path has
no part starting with ``_`` (``__init__`` excepted) and that is listed in :data:`MODULES`, and in
it every top-level function and class whose name does not start with ``_`` (restricted to
``__all__`` when the module defines one), with the public methods of each class.
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api-reference.md"

#: The public surface, by package, in the order of the layers (bottom first).
MODULES = {
    "dsp": [
        "dsp.filters",
        "dsp.envelopes",
        "dsp.onsets",
        "dsp.kinematics",
        "dsp.quality",
        "dsp.chain",
        "dsp.activity",
        "dsp.stretch_reflex",
        "dsp.hreflex",
        "dsp.hreflex.presets",
        "dsp.errors",
    ],
    "firmware_iface": [
        "firmware_iface.codec",
        "firmware_iface.messages",
        "firmware_iface.client",
        "firmware_iface.auth",
        "firmware_iface.scaling",
        "firmware_iface.gatt",
        "firmware_iface.conformance",
        "firmware_iface.emulator.device",
        "firmware_iface.errors",
    ],
    "acquire": [
        "acquire.links",
        "acquire.recorder",
        "acquire.session_file",
        "acquire.session_file.schema",
        "acquire.session_file.writer",
        "acquire.session_file.reader",
        "acquire.session_file.stimuli",
        "acquire.capture",
        "acquire.replay",
        "acquire.recover",
        "acquire.lsl",
        "acquire.sources.base",
        "acquire.protocols.stretch",
        "acquire.protocols.hreflex.plan",
        "acquire.protocols.hreflex.runner",
        "acquire.protocols.hreflex.gate",
        "acquire.protocols.hreflex.notes",
        "acquire.errors",
    ],
    "tonuslab": [
        "tonuslab",
        "tonuslab.session",
        "tonuslab.analysis",
        "tonuslab.results",
        "tonuslab.profile",
        "tonuslab.compare",
        "tonuslab.batch",
        "tonuslab.report",
        "tonuslab.errors",
    ],
}


def _path(module: str) -> pathlib.Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _summary(node) -> str:
    doc = ast.get_docstring(node) or ""
    para = doc.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in para.splitlines())


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> str:
    args = fn.args
    if method and args.args and args.args[0].arg in ("self", "cls"):
        args = ast.arguments(
            posonlyargs=args.posonlyargs,
            args=args.args[1:],
            vararg=args.vararg,
            kwonlyargs=args.kwonlyargs,
            kw_defaults=args.kw_defaults,
            kwarg=args.kwarg,
            defaults=args.defaults[-len(args.args[1:]) :] if args.args[1:] else [],
        )
    text = f"{fn.name}({ast.unparse(args)})"
    if fn.returns is not None:
        text += f" -> {ast.unparse(fn.returns)}"
    return text


def _public_names(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def _is_property(fn) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def _definitions(module: str, tree: ast.Module, listed: set[str] | None):
    """The module's public top-level definitions, in order, with the names it re-exports from
    our own modules (``from dsp.x._impl import f`` in a package ``__init__``) resolved to their
    definitions there."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            source = node.module
            if source.split(".")[0] not in MODULES or not _path(source).exists():
                continue
            wanted = {a.asname or a.name: a.name for a in node.names}
            wanted = {k: v for k, v in wanted.items() if listed is not None and k in listed}
            if not wanted:
                continue
            defs = {getattr(n, "name", ""): n for n in ast.parse(_path(source).read_text()).body}
            for alias, real in wanted.items():
                if isinstance(
                    defs.get(real), ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                ):
                    yield alias, defs[real]
            continue
        name = getattr(node, "name", "")
        if not name or name.startswith("_") or (listed is not None and name not in listed):
            continue
        yield name, node


def module_section(module: str) -> list[str]:
    """Markdown lines for one module."""
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    listed = _public_names(tree)
    lines = [f"### `{module}`", ""]
    summary = _summary(tree)
    if summary:
        lines += [summary, ""]
    for name, node in _definitions(module, tree, listed):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.append(f"- `{_signature(node, method=False)}`: {_summary(node)}".rstrip(": "))
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            head = f"class {name}({bases})" if bases else f"class {name}"
            lines.append(f"- `{head}`: {_summary(node)}".rstrip(": "))
            for item in node.body:
                if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if item.name.startswith("_") and item.name != "__init__":
                    continue
                if _is_property(item):
                    text = f"`.{item.name}` (property)"
                elif item.name == "__init__":
                    text = f"`{_signature(item, method=True).replace('__init__', name, 1)}`"
                else:
                    text = f"`.{_signature(item, method=True)}`"
                doc = _summary(item)
                lines.append(f"  - {text}: {doc}" if doc else f"  - {text}")
    lines.append("")
    return lines


def render() -> str:
    """The whole page."""
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python tools/api_reference.py`; do not edit by hand",
        "(`tests/test_api_reference.py` checks it is current). Signatures and the first paragraph",
        "of each docstring; the docstrings themselves (numpydoc, with shapes and units) are the",
        "full reference. The map of the packages is `docs/architecture.md`.",
        "",
    ]
    for package, modules in MODULES.items():
        out += [f"## {package}", ""]
        for module in modules:
            out += module_section(module)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python tools/api_reference.py")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
