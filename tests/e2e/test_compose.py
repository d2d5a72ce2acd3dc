"""docker-compose.yml against the local runner (no Docker engine here, docs/architecture.md §7).

The runner (deploy/runner.py, ``PROCESSES``) is what `make up` and these e2e tests
really start; the compose file is what deployers start. These tests keep the two in
step: the same processes, the same commands, every setting the processes read,
health checks and start order, a non-root image, and the real infrastructure images.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from recaudo_common import config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def _load_runner():
    spec = importlib.util.spec_from_file_location("recaudo_runner", ROOT / "deploy" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
CONTAINERS: dict = COMPOSE["services"]

#: runner process -> compose service, where the names differ (MinIO replaces s3rver)
COMPOSE_NAME = {"s3": "minio"}
#: infrastructure: compose service -> the real image it must run
INFRA_IMAGES = {"postgres": "postgres:15", "rabbitmq": "rabbitmq:3-management",
                "minio": "minio/minio"}
#: every Python process of the runner: the six nameko services and the gateway
PYTHON = [name for name, cmd in runner.PROCESSES.items()
          if name in config.SERVICES or name == "gateway"]
#: settings only the local runner uses (where it keeps pid files, logs, S3 data)
RUNNER_ONLY = config.LOCAL_ONLY
GATEWAY_ONLY = config.GATEWAY_ONLY
#: what a browser reaches, named as the browser sees it (not a container)
BROWSER_FACING = {"RECAUDO_S3_PUBLIC_ENDPOINT"}
#: secrets: must come from the deployer's environment (.env), never be written in the file
SECRETS = {"RECAUDO_IDENTITY_KEY", "RECAUDO_S3_SECRET_KEY", "RECAUDO_GATEWAY_SECRET_KEY"}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Resolve compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` as if the
    deployer's .env set every required variable (to a placeholder) and nothing else."""
    value = str(value).replace("$$", "\0")
    value = _VAR.sub(lambda m: m.group(3) if m.group(2) in ("-", ":-") else
                     f"set-{m.group(1).lower().replace('_', '-')}", value)
    return value.replace("\0", "$")


def environment(name: str) -> dict[str, str]:
    env = CONTAINERS[name].get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def resolved_settings(name: str) -> config.Settings:
    return config.from_env({k: interpolate(v) for k, v in environment(name).items()})


def dockerfile_final_stage() -> list[str]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_the_runner_is_what_these_tests_think():
    assert "s3" in runner.PROCESSES
    assert PYTHON == [*config.SERVICES, "gateway"]
    assert set(runner.PROCESSES) == {"s3", *PYTHON}


@pytest.mark.parametrize("process", list(runner.PROCESSES))
def test_every_runner_process_has_a_container(process):
    assert COMPOSE_NAME.get(process, process) in CONTAINERS, (
        f"docker-compose.yml has no container for the runner's {process!r}")


def test_every_container_is_accounted_for():
    """Nothing in compose that the runner does not mirror, except the bucket setup."""
    known = {*PYTHON, *INFRA_IMAGES, "minio-init"}
    assert set(CONTAINERS) <= known, f"unexpected containers: {set(CONTAINERS) - known}"


@pytest.mark.parametrize("name", PYTHON)
def test_python_containers_are_built_from_the_one_dockerfile(name):
    build = CONTAINERS[name].get("build")
    assert isinstance(build, dict), f"{name} must be built, not pulled"
    assert (ROOT / build.get("context", ".")).resolve() == ROOT
    assert build.get("dockerfile") == "deploy/Dockerfile"
    assert DOCKERFILE.is_file()
    assert CONTAINERS[name].get("image") == CONTAINERS["gateway"].get("image"), (
        "one image for every Python process")
    assert "entrypoint" not in CONTAINERS[name], "the image's entrypoint migrates and runs"


@pytest.mark.parametrize("name", PYTHON)
def test_python_containers_run_what_the_runner_runs(name):
    """compose's command goes through entrypoint.sh to the runner's very command line."""
    command = CONTAINERS[name].get("command")
    entrypoint = ENTRYPOINT.read_text()
    local = [Path(part).name if part.startswith(str(ROOT / ".venv")) else
             os.path.relpath(part, ROOT) if part.startswith(str(ROOT)) else part
             for part in runner.PROCESSES[name]]
    if name == "gateway":
        assert command == ["gateway"]
        assert f"exec {shlex.join(local)}" in entrypoint
    else:
        assert command == ["service", name]
        assert local[-1] == name
        assert f'exec {shlex.join(local[:-1])} "$2"' in entrypoint
        assert 'recaudo migrate "$2"' in entrypoint, "a service migrates its schema first"
    assert os.access(ENTRYPOINT, os.X_OK)


@pytest.mark.parametrize("name", [*PYTHON, *INFRA_IMAGES])
def test_every_long_running_container_has_a_healthcheck(name):
    check = CONTAINERS[name].get("healthcheck")
    assert check and not check.get("disable"), f"{name} has no health check"
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    if name in PYTHON:
        assert test[1:] == ["python", "-m", "recaudo_common.healthcheck", name]


def test_the_healthcheck_module_knows_every_python_process():
    from recaudo_common import healthcheck

    assert healthcheck.main(["no-such-service"]) == 2
    usage_names = (*config.SERVICES, "gateway")
    assert set(PYTHON) == set(usage_names)


@pytest.mark.parametrize("name", PYTHON)
def test_python_containers_wait_for_healthy_infrastructure(name):
    depends = CONTAINERS[name].get("depends_on")
    assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
    for infra in ("postgres", "rabbitmq"):
        assert depends.get(infra) == {"condition": "service_healthy"}, (
            f"{name} must wait for {infra} to be healthy")


def test_the_gateway_waits_for_every_service():
    depends = CONTAINERS["gateway"]["depends_on"]
    for service in config.SERVICES:
        assert depends.get(service) == {"condition": "service_healthy"}


def test_documents_waits_for_its_bucket():
    depends = CONTAINERS["documents"]["depends_on"]
    assert depends["minio"] == {"condition": "service_healthy"}
    assert depends["minio-init"] == {"condition": "service_completed_successfully"}
    bucket = resolved_settings("documents").s3_bucket
    assert CONTAINERS["minio-init"]["image"].split(":")[0] == "minio/mc"
    assert [interpolate(a) for a in CONTAINERS["minio-init"]["command"]][-1] == f"recaudo/{bucket}"


def test_every_dependency_exists_and_is_checkable():
    for name, container in CONTAINERS.items():
        for target, rule in (container.get("depends_on") or {}).items():
            assert target in CONTAINERS, f"{name} depends on unknown {target}"
            if rule.get("condition") == "service_healthy":
                assert CONTAINERS[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy, but it has no health check")


def test_the_image_runs_as_a_non_root_user():
    users = [line.split(None, 1)[1].strip() for line in dockerfile_final_stage()
             if line.upper().startswith("USER ")]
    assert users, "deploy/Dockerfile's final stage has no USER line"
    assert users[-1].split(":")[0] not in ("root", "0")
    for name in PYTHON:
        assert str(CONTAINERS[name].get("user", "")).split(":")[0] not in ("root", "0")


def test_the_image_installs_every_project_package():
    """A new service directory must be added to the image too."""
    stage = "\n".join(dockerfile_final_stage())
    packages = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("services/*/pyproject.toml")}
    packages.add("gateway")
    installed = set(re.findall(r"-e\s+(\S+)", stage))
    assert packages == installed
    assert "requirements.lock" in stage
    assert "gateway/gateway/static/vendor" in stage, "the npm assets the gateway serves"
    assert "pybabel compile" in stage, "the translations"


def test_the_image_sets_what_the_runner_sets_for_its_processes():
    """The runner adds these to every process's environment (psycopg under eventlet)."""
    env_lines = " ".join(line for line in dockerfile_final_stage())
    assert "PSYCOPG_WAIT_FUNC=wait_select" in env_lines
    assert "PYTHONUNBUFFERED=1" in env_lines


@pytest.mark.parametrize("name", PYTHON)
def test_every_setting_the_processes_read_is_set(name):
    env = environment(name)
    needed = set(config.ENV) - RUNNER_ONLY - (set() if name == "gateway" else GATEWAY_ONLY)
    missing = needed - set(env)
    assert not missing, f"{name} lacks {sorted(missing)} (config.ENV)"
    unknown = {key for key in env if key.startswith("RECAUDO_")} - set(config.ENV)
    assert not unknown, f"{name} sets {sorted(unknown)}, which config.py does not read"


@pytest.mark.parametrize("name", PYTHON)
def test_settings_make_sense_inside_a_container(name):
    env = environment(name)
    cfg = resolved_settings(name)  # every value parses as config.py reads it
    assert cfg.log_format == "json"
    for var, attr in config.ENV.items():
        if var in RUNNER_ONLY | BROWSER_FACING or (var in GATEWAY_ONLY and name != "gateway"):
            continue
        value = str(getattr(cfg, attr))
        assert "127.0.0.1" not in value and "localhost" not in value, (
            f"{name}: {var} points at the container itself")
        if "://" in value:
            host = urlsplit(value).hostname
            assert host in CONTAINERS, f"{name}: {var} names host {host!r}, not a container"
    for var in SECRETS & set(env):
        assert "${" in env[var], f"{name}: {var} must come from .env, not the file"
    for var in ("RECAUDO_DATABASE_URL", "RECAUDO_AMQP_URI"):  # passwords from .env too
        assert urlsplit(interpolate(env[var])).password.startswith("set-"), var
    assert cfg.identity_key != config.Settings().identity_key


def test_python_containers_share_one_environment():
    """The same settings everywhere (the x-recaudo-env anchor), the gateway adding its own."""
    base = environment("auth")
    for name in PYTHON:
        env = environment(name)
        assert {k: v for k, v in env.items() if k not in GATEWAY_ONLY} == base, name


def test_the_settings_match_the_infrastructure():
    cfg = resolved_settings("gateway")
    db = urlsplit(cfg.database_url)
    postgres = {k: interpolate(v) for k, v in environment("postgres").items()}
    assert db.hostname == "postgres" and (db.port or 5432) == 5432
    assert db.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert db.username == postgres["POSTGRES_USER"]
    assert db.password == postgres["POSTGRES_PASSWORD"]

    amqp = urlsplit(cfg.amqp_uri)
    rabbit = {k: interpolate(v) for k, v in environment("rabbitmq").items()}
    assert amqp.hostname == "rabbitmq"
    assert amqp.path.lstrip("/") == rabbit["RABBITMQ_DEFAULT_VHOST"]
    assert amqp.username == rabbit["RABBITMQ_DEFAULT_USER"]
    assert amqp.password == rabbit["RABBITMQ_DEFAULT_PASS"]

    minio = {k: interpolate(v) for k, v in environment("minio").items()}
    assert urlsplit(cfg.s3_endpoint).hostname == "minio"
    assert urlsplit(cfg.s3_endpoint).port == 9000
    assert cfg.s3_access_key == minio["MINIO_ROOT_USER"]
    assert cfg.s3_secret_key == minio["MINIO_ROOT_PASSWORD"]
    # presigned URLs name the address browsers reach: MinIO's published API port
    published = [interpolate(p).split(":")[-2:] for p in CONTAINERS["minio"]["ports"]]
    assert [str(urlsplit(cfg.s3_public_endpoint).port), "9000"] in published


def test_the_gateway_publishes_its_port():
    cfg = resolved_settings("gateway")
    assert cfg.gateway_host == "0.0.0.0", "gunicorn must listen beyond the container"
    published = []
    for port in CONTAINERS["gateway"].get("ports", []):
        if isinstance(port, dict):
            published.append(int(port["target"]))
        else:
            published.append(int(interpolate(port).rsplit(":", 1)[-1].split("/")[0]))
    assert cfg.gateway_port in published


def test_infrastructure_uses_the_real_images():
    for name, image in INFRA_IMAGES.items():
        assert CONTAINERS[name]["image"] == image
        assert "build" not in CONTAINERS[name]
    assert CONTAINERS["minio"]["command"] == ["server", "/data", "--console-address", ":9001"]
    checks = {name: " ".join(CONTAINERS[name]["healthcheck"]["test"][1:])
              for name in INFRA_IMAGES}
    assert checks["postgres"].startswith("pg_isready")
    assert checks["rabbitmq"] == "rabbitmq-diagnostics -q ping"
    assert checks["minio"] == "mc ready local"


def test_infrastructure_keeps_its_data_in_volumes():
    data_dirs = {"postgres": "/var/lib/postgresql/data", "rabbitmq": "/var/lib/rabbitmq",
                 "minio": "/data"}
    for name, path in data_dirs.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in CONTAINERS[name]["volumes"]}
        assert path in mounts, f"{name} keeps its data in the container"
        assert mounts[path] in COMPOSE["volumes"], f"{name}'s volume is not declared"


def test_the_build_context_leaves_out_local_state():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "node_modules", "var", ".env"} <= ignored
