"""The test suites read as specifications: no test module imports another one. What
several modules share lives in their suite's ``conftest.py`` (fixtures) or ``helpers.py``
(everything else), so a test module can be read, run or removed on its own."""
from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: an absolute import of a test module, also inside code a test runs as a subprocess
_ABSOLUTE = re.compile(r"\b(?:from|import)\s+tests(?:\.\w+)*\.test_\w+")


def _is_test_module(name: str | None) -> bool:
    return bool(name) and name.rsplit(".", 1)[-1].startswith("test_")


def imports_of_test_modules(tests: Path, but: Path | None = None) -> list[str]:
    """``path:line: statement`` for every import of a test module under ``tests`` (but in
    ``but``: this module, whose own check writes such imports as examples)."""
    found = []
    for path in sorted(tests.rglob("*.py")):
        if path == but:
            continue
        source = path.read_text(encoding="utf-8")
        where = path.relative_to(tests.parent)
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.ImportFrom):
                named = [node.module] if node.module else [a.name for a in node.names]
                if any(_is_test_module(n) for n in named):
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Import):
                if any(_is_test_module(a.name) for a in node.names):
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in _ABSOLUTE.finditer(node.value):
                    found.append(f"{where}:{node.lineno}: {match.group(0)} (in a string)")
    return found


def test_no_test_module_imports_another():
    found = imports_of_test_modules(TESTS, but=Path(__file__).resolve())
    assert not found, ("test modules import other test modules; move what they share to "
                       "the suite's conftest.py or helpers.py:\n" + "\n".join(found))


def test_the_check_sees_every_form_of_such_an_import(tmp_path):
    suite = tmp_path / "tests" / "e2e"
    suite.mkdir(parents=True)
    (suite / "test_a.py").write_text(
        "from .test_b import Api\n"
        "from . import test_c\n"
        "import tests.e2e.test_d\n"
        "from .helpers import sql\n"
        "CODE = 'from tests.e2e.test_e import Service'\n")
    found = imports_of_test_modules(tmp_path / "tests")
    assert [line.split(": ", 1)[1] for line in found] == [
        "from .test_b import Api", "from . import test_c", "import tests.e2e.test_d",
        "from tests.e2e.test_e (in a string)"]
