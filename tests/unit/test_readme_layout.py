"""The README's layout section names every module of the shared plumbing, and
docs/architecture.md exists and is what the code points at (no reference to a brief
outside the repository)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON = ROOT / "services" / "common" / "recaudo_common"
GATEWAY = ROOT / "gateway" / "gateway"


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Layout")
    return readme[start:readme.index("\n### ", start + 1)]


def test_the_readme_layout_names_every_shared_module():
    layout = _layout_section()
    modules = sorted(p.name for p in COMMON.glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if not re.search(rf"\b{re.escape(m)}\b", layout)]
    assert not missing, f"README layout section does not name: {missing}"


def test_the_readme_layout_names_no_module_that_is_gone():
    layout = _layout_section()
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    shared = {m for m in named if (COMMON / m).exists()}
    per_service = {"service.py", "models.py", "contracts.py"}
    gone = sorted(named - shared - per_service)
    assert not gone, f"README layout section names modules that do not exist: {gone}"


def test_the_readme_layout_names_every_package_of_the_gateway():
    """The gateway's folders (``api/``, ``ui/``) are where a newcomer looks first."""
    layout = _layout_section()
    packages = sorted(p.parent.name for p in GATEWAY.glob("*/__init__.py"))
    assert packages, "the gateway has no packages?"
    missing = [p for p in packages if not re.search(rf"(?m)^\s+{re.escape(p)}/\s", layout)]
    assert not missing, f"README layout section does not name the gateway's: {missing}"


def test_code_and_docs_point_at_the_projects_own_architecture_document():
    assert (ROOT / "docs" / "architecture.md").is_file()
    offenders = []
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/**/*.py"),
                 *ROOT.glob("tests/**/*.py"), ROOT / "README.md"]:
        if ".venv" in path.parts or path == Path(__file__):
            continue
        if "DESIGN.md" in path.read_text(encoding="utf-8", errors="replace"):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"these point at a brief outside the repository: {offenders}"
