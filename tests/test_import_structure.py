"""The package's import structure, read from the source (nothing is imported): dependencies point one way.

The command line (gsmlp.cli, gsmlp.args, gsmlp.commands) calls the stages; no stage calls the command line
back, and no chain of imports leads from a module back to itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
# The wheel maps each stage folder into the package (pyproject.toml, [tool.scikit-build.wheel.packages]).
PACKAGE_FOLDERS = {
    "gsmlp": "gsmlp",
    "gsmlp.model": "model",
    "gsmlp.data": "data",
    "gsmlp.calibration": "calibration",
    "gsmlp.exporter": "exporter",
    "gsmlp.validation": "validation",
    "gsmlp.runtime": "runtime",
    "gsmlp.kernels": "plugins/kernels",
}
STAGES = ("model", "data", "calibration", "exporter", "validation", "runtime", "plugins")
COMMAND_LINE = ("gsmlp.cli", "gsmlp.args", "gsmlp.commands")


def _modules() -> dict[str, Path]:
    """Every gsmlp module name -> its source file."""
    found = {}
    for package, folder in PACKAGE_FOLDERS.items():
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            relative = path.relative_to(REPOSITORY / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            if "tests" in parts:
                continue
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The gsmlp modules `path` imports, at any depth of its code (a lazy import is still an import)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import submodule` imports the submodule; `from module import name`, the module.
            names.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {_owner(name, known) for name in names if name.split(".")[0] == "gsmlp"} - {None, module}


def _owner(name: str, known: set[str]) -> str | None:
    """The module that `name` (a module, or a name inside one) belongs to."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


def test_the_stages_never_import_the_command_line() -> None:
    modules = _modules()
    graph = _graph()
    offenders = []
    for name, imported in graph.items():
        folder = modules[name].relative_to(REPOSITORY).parts[0]
        if folder in STAGES:
            bad = sorted(i for i in imported if i.startswith(COMMAND_LINE))
            offenders += [f"{name} imports {b}" for b in bad]
    assert not offenders, offenders


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle found by a depth-first walk, as 'a -> b -> a'."""
    state: dict[str, str] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def _part(module: str) -> str:
    """gsmlp.model.wrap -> gsmlp.model: a stage, a kernel package, or one of gsmlp's own modules."""
    return ".".join(module.split(".")[:2])


def test_the_package_has_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, cycles


def test_the_stages_import_each_other_one_way() -> None:
    """No cycle between the parts either: model -> kernels -> model is one, whichever modules carry it."""
    parts: dict[str, set[str]] = {}
    for module, imported in _graph().items():
        parts.setdefault(_part(module), set()).update(_part(i) for i in imported if _part(i) != _part(module))
    cycles = _cycles(parts)
    assert not cycles, cycles


def test_the_reader_sees_every_stage() -> None:
    """The two tests above read real files: each stage contributes modules and imports."""
    graph = _graph()
    for package in PACKAGE_FOLDERS:
        assert any(name == package or name.startswith(package + ".") for name in graph), package
    assert "gsmlp.model.wrap" in graph["gsmlp.model.checkpoint"]
