"""The package layers (issue 14): imports run one way, and no module imports itself back.

The graph is built from every ``import`` statement in the source, module level and inside
functions alike (a deferred import still makes a cycle for the reader of the code).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("firmware_iface", "dsp", "virtual_patient", "acquire", "tonuslab")
#: What each package may import besides itself (docs/architecture.md, "Layers").
#: ``virtual_patient`` (the simulator) and ``dsp`` are the bottom; the emulated device in
#: ``firmware_iface`` is fed by the simulator.
ALLOWED = {
    "dsp": set(),
    "virtual_patient": set(),
    "firmware_iface": {"virtual_patient"},
    "acquire": {"dsp", "firmware_iface", "virtual_patient"},
    "tonuslab": {"dsp", "firmware_iface", "virtual_patient", "acquire"},
}


def _module_name(path: pathlib.Path, base: pathlib.Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(base: pathlib.Path, packages) -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` restricted to modules under ``base``'s packages."""
    modules = {}
    for pkg in packages:
        for path in sorted((base / pkg).rglob("*.py")):
            modules[_module_name(path, base)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = name.split(".") if is_pkg else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    mod = ".".join(here + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p.b import g\n")
    (pkg / "b.py").write_text("from p import a\n")
    (pkg / "c.py").write_text("from . import b\n")
    assert cycles(import_graph(tmp_path, ["p"])) == [["p.a", "p.b"]]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph(ROOT, PACKAGES)) == []


def test_packages_import_only_downwards():
    graph = import_graph(ROOT, PACKAGES)
    wrong = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if (a := m.split(".")[0]) != (b := t.split(".")[0]) and b not in ALLOWED[a]
    )
    assert wrong == []


def test_firmware_iface_keeps_the_same_jit_options_as_dsp():
    import dsp._jit
    import firmware_iface._jit

    assert firmware_iface._jit.JIT_OPTIONS == dsp._jit.JIT_OPTIONS
    assert firmware_iface._jit.JIT_DISABLED == dsp._jit.JIT_DISABLED


def test_deprecated_names_still_work_for_one_release():
    import warnings

    import acquire.session_file as sf
    import tonuslab
    import tonuslab.analysis
    import tonuslab.results

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sf.Session is sf.SessionReader
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert tonuslab.analysis.write_results is tonuslab.results.write_results
    assert tonuslab.Stimulus is sf.Stimulus  # one Stimulus class, one Session class
    assert tonuslab.Session.__module__ == "tonuslab.session"


def test_one_stimulus_and_one_session_class_in_the_tree():
    """``Stimulus`` and ``Session`` are each defined once (the simulator's program item is
    ``StimulusSpec``, like ``StretchSpec``)."""
    defined: dict[str, list[str]] = {"Stimulus": [], "Session": []}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and node.name in defined:
                    defined[node.name].append(str(path.relative_to(ROOT)))
    assert defined == {
        "Stimulus": ["acquire/session_file/stimuli.py"],
        "Session": ["tonuslab/session.py"],
    }
