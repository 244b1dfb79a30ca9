"""Providers own their ledgers: no module outside railserve/payment/providers/ imports a
provider's models or modules; the rest asks a provider through the `Gateway` protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import railserve

ROOT = Path(railserve.__file__).parent
PROVIDERS = ROOT / "payment" / "providers"
# The registry (providers/__init__.py) and the router are the way in; the rest is private.
PRIVATE = {
    f"railserve.payment.providers.{path.stem}"
    for path in PROVIDERS.glob("*.py")
    if path.stem not in ("__init__", "router")
}
LEDGER_MODELS = {"SimulatedCharge", "SimulatedRefund"}


def imports(path: Path):
    """(module, name or None) for each import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name


def outside_providers():
    for path in sorted(ROOT.rglob("*.py")):
        if PROVIDERS in path.parents or (ROOT / "migrations") in path.parents:
            continue
        yield path


def test_the_private_modules_are_known():
    assert "railserve.payment.providers.models" in PRIVATE
    assert {"railserve.payment.providers.simulated", "railserve.payment.providers.simupi"} < PRIVATE


def test_no_module_outside_the_providers_imports_their_models():
    offenders = []
    for path in outside_providers():
        for module, name in imports(path):
            whole = f"{module}.{name}" if name else module
            if module in PRIVATE or whole in PRIVATE or name in LEDGER_MODELS:
                offenders.append(f"{path.relative_to(ROOT.parent)}: {whole}")
    assert offenders == []


def test_the_ledger_models_live_with_the_providers():
    from railserve.payment import models
    from railserve.payment.providers import models as ledger_models

    for name in LEDGER_MODELS:
        assert not hasattr(models, name)
        assert getattr(ledger_models, name).__module__ == ledger_models.__name__


def test_the_scan_sees_an_offender(tmp_path):
    offender = tmp_path / "bad.py"
    offender.write_text(
        "from railserve.payment.providers.models import SimulatedCharge\n"
        "import railserve.payment.providers.simupi\n"
    )
    found = list(imports(offender))
    assert ("railserve.payment.providers.models", "SimulatedCharge") in found
    assert ("railserve.payment.providers.simupi", None) in found
