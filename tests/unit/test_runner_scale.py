"""The local runner's instances (``make up SCALE="queues=2 activities=3"``): what a scale
means, what it refuses, and which pid files ``status`` and ``down`` cover. Starting real
instances is tests/e2e/test_two_instances.py's."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("recaudo_runner", ROOT / "deploy" / "runner.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)


def test_a_scale_names_services_and_counts():
    assert runner.parse_scale("queues=2 activities=3") == {"queues": 2, "activities": 3}
    assert runner.parse_scale("") == {}


@pytest.mark.parametrize("spec, says", [
    ("queues=0", "cannot scale queues to '0'"),
    ("queues=-1", "cannot scale queues to '-1'"),
    ("queues=two", "cannot scale queues to 'two'"),
    ("queues", "cannot scale queues to ''"),
    ("billing=2", "cannot scale 'billing': only the services scale"),
    ("gateway=2", "cannot scale 'gateway'"),
])
def test_a_bad_scale_is_refused_naming_what_is_wrong(spec, says):
    with pytest.raises(SystemExit) as exc:
        runner.parse_scale(spec)
    assert says in str(exc.value)


def test_make_up_refuses_a_bad_scale_before_starting_anything(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "runner.py"), "check-scale",
                           "queues=0"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "cannot scale queues to '0'" in proc.stderr
    makefile = (ROOT / "Makefile").read_text()
    up = makefile[makefile.index("\nup:"):].split("\n\n")[0]
    assert up.index("check-scale") < up.index("infra.sh"), "checked before the infrastructure"
    assert 'up --scale "$(SCALE)"' in up


def test_extra_instances_follow_their_service_with_their_own_names():
    names = runner.instance_names({"queues": 2, "activities": 3})
    assert names[names.index("queues"):names.index("queues") + 2] == ["queues", "queues-2"]
    assert names[names.index("activities"):names.index("activities") + 3] == \
        ["activities", "activities-2", "activities-3"]
    assert runner.command("activities-3") == runner.command("activities")
    assert set(names) - {"queues-2", "activities-2", "activities-3"} == set(runner.ALL)


def test_status_and_down_cover_every_instance_with_a_pid_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "VAR", tmp_path)
    (tmp_path / "run").mkdir()
    for name in ("queues-2", "queues-10", "auth-2", "notes-2", "queues-x"):
        (tmp_path / "run" / f"{name}.pid").write_text("1 1")
    names = runner.started_names()
    assert names[names.index("queues"):names.index("queues") + 3] == \
        ["queues", "queues-2", "queues-10"]
    assert "auth-2" in names and "notes-2" not in names and "queues-x" not in names
    assert runner._pidfile("queues-2").name == "queues-2.pid"
