"""Imports run one way, down the layers: read from the source, not from `sys.modules`.

Every import counts, at the top of a module or inside a function, except those under
`if TYPE_CHECKING:` (they name a type and run nothing).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "railserve"

# Modules below the payment layer: the database, its executors, the models, the limits.
LOWER = ("railserve.db", "railserve.store", "railserve.batch", "railserve.models")
MODELS = ("railserve.models", "railserve.payment.models", "railserve.bounds")
# What sits above them: routes, live streams, the console, the services and their steps.
UPPER = (
    "railserve.payment.routes",
    "railserve.payment.live",
    "railserve.ops",
    "railserve.payment.service",
    "railserve.payment.refunds",
    "railserve.payment.steps",
    "railserve.payment.providers",
    "railserve.booking",
    "railserve.seats",
    "railserve.notify",
    "railserve.sweep",
)
SERVICES = (*UPPER, "railserve.payment.webhook", "railserve.payment.train_cancellation")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, package: str) -> set[str]:
    """Every module an import names (`from a import b` names `a` and `a.b`)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of() -> dict[str, set[str]]:
    table = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        table[name] = imported(ast.parse(path.read_text(encoding="utf-8")), package)
    return table


IMPORTS = imports_of()


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def offending(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if within(module, importers)
        for target in targets
        if within(target, forbidden)
    )


def test_the_scan_sees_the_package() -> None:
    assert "railserve.db" in IMPORTS and "railserve.ops.actions" in IMPORTS
    assert (
        "railserve.store" in IMPORTS["railserve.db"]
        or "railserve.store.compat" in (IMPORTS["railserve.db"])
    )


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        pytest.param(LOWER, UPPER, id="db, store and models import nothing above them"),
        pytest.param(MODELS, SERVICES, id="models import nothing from services"),
        pytest.param(("railserve.ops",), ("railserve.payment.routes",), id="ops not via routes"),
        pytest.param(
            ("railserve.ops.actions",),
            ("railserve.payment.providers",),
            id="the console's actions are handed their gateway",
        ),
    ],
)
def test_imports_run_down_the_layers(
    importers: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    assert offending(importers, forbidden) == []


def calls_of(module: str, attribute: str) -> list[str]:
    """Modules that call `<module>.<attribute>(...)` (as `from railserve.payment import
    service` names it)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attribute
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == module
            ):
                found.append(module_name(path))
    return sorted(set(found))


def test_a_settlement_is_entered_from_one_place() -> None:
    assert calls_of("service", "settle") == ["railserve.payment.settlement"]
    assert "railserve.payment.refunds.settle_and_follow_up" not in {
        target for targets in IMPORTS.values() for target in targets
    }


# Underscored names that are their library's public API: werkzeug's proxies (documented
# `_get_current_object`) and namedtuples' methods.
PUBLIC_UNDERSCORED = {"_get_current_object", "_replace", "_asdict", "_fields", "_make"}
# Where the private names of Tortoise-ORM and aiosqlite, and of quart-rate-limiter, are
# kept, each with its test (tests/store/test_compat.py, tests/test_limits_compat.py).
COMPAT = ("railserve.store.compat", "railserve.limits_compat")


def private_reads(tree: ast.AST) -> list[str]:
    """`x._name` where `x` is not the object's own `self` or `cls`."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in PUBLIC_UNDERSCORED:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_private_names_of_other_modules_are_read_only_in_compat() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name in COMPAT or within(name, ("railserve.migrations",)):
            continue
        if found := private_reads(ast.parse(path.read_text(encoding="utf-8"))):
            offenders[name] = found
    assert not offenders


def test_the_private_name_scan_finds_one() -> None:
    assert private_reads(ast.parse("model._meta.db\nself._ok\nproxy._get_current_object()")) == [
        "model._meta (line 1)"
    ]
