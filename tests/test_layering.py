"""The package stays easy to change: every module imports, the modules import each other without a
cycle, the pipes do not depend on the pretraining package (what both use lives in
spacy_mlm.mlm_data), no module grows past MAX_LINES, and setup.py's entry points name importable
functions registered under those names."""

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from spacy.util import registry

import spacy_mlm

PACKAGE_DIR = Path(spacy_mlm.__file__).parent
SETUP_PY = PACKAGE_DIR.parent / "setup.py"
MAX_LINES = 350
# `python -m spacy_mlm` runs the CLI when imported: its imports are read, the module is not imported.
NOT_IMPORTED = {"spacy_mlm.__main__"}
# The spaCy (or thinc) registry that each entry point group of setup.py fills.
GROUP_REGISTRIES = {
    "spacy_factories": "factories", "spacy_architectures": "architectures", "spacy_span_getters": "span_getters",
    "spacy_readers": "readers", "spacy_scorers": "scorers", "spacy_misc": "misc", "thinc_layers": "layers",
}


def module_files() -> Dict[str, Path]:
    """Every module of spacy_mlm (packages by their __init__.py), found by walking the package."""
    found = {"spacy_mlm": PACKAGE_DIR / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="spacy_mlm."):
        base = Path(info.module_finder.path) / info.name.rsplit(".", 1)[-1]
        found[info.name] = base / "__init__.py" if info.ispkg else base.with_suffix(".py")
    return found


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported_modules(name: str) -> Set[str]:
    """The spacy_mlm modules that module `name` imports, at module level or inside functions:
    `from .x import y`, `from .. import x`, `import spacy_mlm.x` (y counts when it is a module)."""
    package = name if is_package(name) else name.rsplit(".", 1)[0]
    targets: Set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in MODULES else source)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as a path [a, b, ..., a], or None."""
    done: Set[str] = set()
    path: List[str] = []
    on_path: Set[str] = set()

    def visit(node: str) -> Optional[List[str]]:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return path[path.index(target):] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_walk_finds_the_package():
    assert {"spacy_mlm.pipes.fill_mask", "spacy_mlm.pretrain.loop", "spacy_mlm.mlm_data.masking"} <= set(MODULES)
    assert "spacy_mlm.mlm_data.masking" in GRAPH["spacy_mlm.pretrain.loop"]
    assert "spacy_mlm.errors" in GRAPH["spacy_mlm.mlm_data.corpus"]


@pytest.mark.parametrize("name", sorted(set(MODULES) - NOT_IMPORTED))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_find_cycle_finds_a_function_level_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "Import cycle among spacy_mlm's modules: " + " -> ".join(cycle)


def test_pipes_do_not_import_the_pretraining_package():
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items() if name.startswith("spacy_mlm.pipes")
        for target in targets if target == "spacy_mlm.pretrain" or target.startswith("spacy_mlm.pretrain.")
    )
    assert not offenders, ("The pipes depend on the pretraining package (move what both use to "
                           "spacy_mlm.mlm_data): " + "; ".join(offenders))


def test_no_module_is_over_max_lines():
    lengths = {path.relative_to(PACKAGE_DIR.parent).as_posix(): len(path.read_text(encoding="utf8").splitlines())
               for path in PACKAGE_DIR.rglob("*.py")}
    offenders = sorted(f"{path} ({n} lines)" for path, n in lengths.items() if n > MAX_LINES)
    assert not offenders, f"Modules over {MAX_LINES} lines (split them along their seams): " + ", ".join(offenders)


def setup_entry_points() -> Dict[str, List[str]]:
    """setup()'s entry_points argument, read from setup.py without running it."""
    for node in ast.walk(ast.parse(SETUP_PY.read_text(encoding="utf8"))):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no entry_points")


ENTRY_POINTS = [(group, line) for group, lines in setup_entry_points().items() for line in lines]


@pytest.mark.parametrize("group,line", ENTRY_POINTS)
def test_entry_point_names_a_registered_function(group, line):
    """Each entry point's target imports, and spaCy's registry holds it under the entry point's name
    (the installed entry points may be older than setup.py: this reads setup.py itself)."""
    name, target = (part.strip() for part in line.split("=", 1))
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    if attr:
        obj = getattr(obj, attr)
    if group in GROUP_REGISTRIES:
        assert getattr(registry, GROUP_REGISTRIES[group]).get(name) is obj


def test_the_mlm_data_functions_have_entry_points():
    """Every function spacy_mlm registers in spaCy's misc registry has a spacy_misc entry point, so that a
    config naming it resolves without importing its module first."""
    for name in sorted(set(MODULES) - NOT_IMPORTED):
        importlib.import_module(name)
    registered = {str(name) for name in registry.misc.get_all() if str(name).startswith("spacy_mlm.")}
    listed = {line.split("=", 1)[0].strip() for line in setup_entry_points()["spacy_misc"]}
    assert registered == listed
