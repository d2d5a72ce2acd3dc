"""The boundary between processes, checked on the source: what crosses it (RPC schemas, the
enums they name, event payloads) lives in contract modules, and nothing else of a service is
imported from outside it.

* The gateway and every service import another service only through its
  ``<service>/contracts.py``.
* A contract module imports the standard library, marshmallow and the shared plumbing
  (``recaudo_common``, not its models or database), never its own service's models or logic.
* Every ``pyproject.toml`` declares exactly the project packages its code imports.

Every ``.py`` file is read as an AST, function-level imports included.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")
                  if p.parent.name != "common")
#: the packages of the project, by top-level module
PACKAGES = {**{name: f"recaudo-{name}" for name in SERVICES},
            "recaudo_common": "recaudo-common", "gateway": "recaudo-gateway"}
#: shared plumbing a contract may not lean on: it is the services' storage, not a contract
NOT_FOR_CONTRACTS = {"recaudo_common.models", "recaudo_common.db", "recaudo_common.outbox",
                     "sqlalchemy", "nameko"}


def _code_of(package: str) -> list[Path]:
    """The source files of a project package (its migrations too)."""
    folder = ROOT / "gateway" if package == "gateway" else ROOT / "services" / package
    return sorted(p for p in folder.rglob("*.py") if "build" not in p.relative_to(folder).parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """What every import statement of ``path`` names: ``import a.b`` names ``a.b``, ``from
    a import b`` names ``a.b`` (``b`` may be a module or a name in ``a``); relative imports
    keep their dots (``from .models import X``: ``.models.X``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found += [(node.lineno, f"{base}.{alias.name}" if node.module else base + alias.name)
                      for alias in node.names]
    return found


def _other_services_insides(owner: str, module: str) -> bool:
    parts = module.split(".")
    if parts[0] not in SERVICES or parts[0] == owner:
        return False
    return len(parts) < 2 or parts[1] != "contracts"


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_the_gateway_and_the_services_import_other_services_through_their_contracts_only():
    offenders = []
    for owner in ["gateway", *SERVICES]:
        for path in _code_of(owner):
            for line, module in _imports(path):
                if not module.startswith(".") and _other_services_insides(owner, module):
                    offenders.append(f"{_where(path, line)} imports {module}")
    assert SERVICES and not offenders, "\n".join(offenders)


def test_every_service_has_a_contract_module_that_imports_no_models_and_no_service_logic():
    offenders = []
    for service in SERVICES:
        path = ROOT / "services" / service / service / "contracts.py"
        assert path.is_file(), f"{service} has no contracts.py"
        for line, module in _imports(path):
            if module.startswith("."):
                offenders.append(f"{_where(path, line)} imports its service's {module}")
            elif _other_services_insides(service, module) or module.startswith(f"{service}."):
                offenders.append(f"{_where(path, line)} imports {module}")
            elif any(module == bad or module.startswith(bad + ".") for bad in NOT_FOR_CONTRACTS):
                offenders.append(f"{_where(path, line)} imports {module}")
    assert not offenders, "\n".join(offenders)


def _declared(package: str) -> set[str]:
    folder = ROOT / "gateway" if package == "gateway" else ROOT / "services" / package
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in project.get("dependencies", [])}
    return {n for n in names if n in PACKAGES.values()}


def _imported(package: str) -> set[str]:
    tops = {module.split(".")[0] for path in _code_of(package)
            for _, module in _imports(path) if not module.startswith(".")}
    return {PACKAGES[top] for top in tops if top in PACKAGES and top != package}


def test_every_pyproject_declares_exactly_the_project_packages_its_code_imports():
    wrong = {}
    for package in ["gateway", *SERVICES]:
        declared, imported = _declared(package), _imported(package)
        if declared != imported:
            wrong[package] = {"declared, not imported": sorted(declared - imported),
                              "imported, not declared": sorted(imported - declared)}
    assert not wrong, wrong


def test_the_checks_see_a_forbidden_import(tmp_path):
    """The walk finds an import inside a function and a ``from`` import of a module."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from portfolio import imports\n"
                      "from queues.contracts import QueueWrite\n", encoding="utf-8")
    modules = [m for _, m in _imports(sample)]
    assert sorted(modules) == ["portfolio.imports", "queues.contracts.QueueWrite"]
    assert _other_services_insides("gateway", "portfolio.imports")
    assert not _other_services_insides("gateway", "queues.contracts.QueueWrite")
    assert not _other_services_insides("portfolio", "portfolio.imports")
