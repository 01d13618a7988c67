"""Arrows between the package's parts point one way (docs/architecture.md): the model package knows
nothing of the engine around it, storage knows no model (only the interface's types: an index records
which model built it), and the model package has no import cycle. Read from the source (every import,
also those inside functions), so a lazy import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tokensearch"
MODEL = "tokensearch.tokenocr_model"
INTERFACE = f"{MODEL}.interface"  # the seam: the types the engine and every model share
# what the model package may use from the rest of tokensearch: modules that import nothing of tokensearch
# but the interface (textcut cuts text for tokenizers and queries alike, and returns the interface's types)
MODEL_MAY_IMPORT = {"tokensearch.errors", "tokensearch.imaging", "tokensearch.textcut", "tokensearch.vectornorm"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


MODULES = _modules()


def imports_of(name: str) -> set[str]:
    """The tokensearch modules ``name`` imports (a package counts as its ``__init__``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from . import tiling`
    return {m for m in found if m in MODULES}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walker_sees_relative_lazy_and_submodule_imports() -> None:
    # registry imports mini lazily inside a builder; tokenocr does `from . import tiling`
    assert f"{MODEL}.mini_encoder" in imports_of(f"{MODEL}.registry")
    assert f"{MODEL}.tiling" in imports_of(f"{MODEL}.tokenocr")
    assert "tokensearch.storage" in imports_of("tokensearch.engine")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _in(m, MODEL)))
def test_the_model_package_imports_nothing_of_the_engine_around_it(name: str) -> None:
    outside = {m for m in imports_of(name) if not _in(m, MODEL)}
    assert outside <= MODEL_MAY_IMPORT, (
        f"{name} imports {sorted(outside - MODEL_MAY_IMPORT)}: a model must not know the indexer, storage, "
        "search, API or sample documents; pass what it needs in (see docs/architecture.md)"
    )


@pytest.mark.parametrize("name", sorted(MODEL_MAY_IMPORT))
def test_what_models_may_import_are_leaves(name: str) -> None:
    assert imports_of(name) <= {MODEL, INTERFACE}, (
        f"{name} is shared with the model package, so it imports nothing of tokensearch but the interface"
    )


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _in(m, "tokensearch.storage")))
def test_storage_knows_models_only_by_the_interfaces_types(name: str) -> None:
    models = {m for m in imports_of(name) if _in(m, MODEL)} - {MODEL, INTERFACE}
    assert not models, f"{name} imports {sorted(models)}: storage knows models only by the interface's types"
    tree = ast.parse(MODULES[INTERFACE].read_text())
    types = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    used = {
        a.name
        for n in ast.walk(ast.parse(MODULES[name].read_text()))
        if isinstance(n, ast.ImportFrom) and (n.module or "").endswith("tokenocr_model.interface")
        for a in n.names
    }
    assert used <= types, f"{name} imports {sorted(used - types)} from the model's interface: only its types"


def test_the_model_package_has_no_import_cycle() -> None:
    # an edge to the package itself (`from . import tiling`) only says where the submodule is
    graph = {m: {d for d in imports_of(m) if _in(d, MODEL) and d not in (m, MODEL)} for m in MODULES if _in(m, MODEL)}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m) :] + [m]))
        if m in done:
            return
        for d in sorted(graph[m]):
            visit(d, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
