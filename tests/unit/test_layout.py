"""The compatibility front-ends live in raysession.ibm, and no core module imports them."""

from __future__ import annotations

import ast
import pathlib

import raysession

PACKAGE = pathlib.Path(raysession.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    """Modules ``path`` imports, as absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    relative = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(relative[: len(relative) - node.level]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_core_module_imports_the_compatibility_package() -> None:
    core = [
        p
        for p in PACKAGE.rglob("*.py")
        if "ibm" not in p.relative_to(PACKAGE).parts and p.name != "__init__.py"
    ]
    assert len(core) > 20
    offenders = {}
    for path in core:
        bad = sorted(m for m in _imports(path) if m.startswith("raysession.ibm"))
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = bad
    assert offenders == {}


def test_the_front_ends_are_in_raysession_ibm_and_importable_from_the_top() -> None:
    from raysession import ibm

    for name in ibm.__all__:
        assert getattr(raysession, name) is getattr(ibm, name)
        assert getattr(ibm, name).__module__.startswith("raysession.ibm.")
