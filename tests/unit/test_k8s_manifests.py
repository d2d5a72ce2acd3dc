"""deploy/k8s against Kubernetes and against the local runner, offline (no cluster, Docker
engine or kubectl exists here).

Every overlay is rendered (deploy/k8s/render.py, the part of Kustomize the manifests use)
and every object validated: built-in kinds against the Kubernetes schemas of a current
release (the ``kubernetes-validate`` package, strict: an unknown field fails), custom
resources against the operators' published CRD schemas kept in deploy/k8s/crds/ (made
strict the same way). Then what the runner starts is checked to be what the cluster
runs: a Deployment per process with the same command, every setting the processes read,
probes, requests and limits, a non-root user and a grace period; a KEDA ScaledObject per
service over its own queues; the gateway behind a Service, an Ingress and an HPA.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from functools import lru_cache
from importlib import import_module
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from recaudo_common import config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.33.0"

_spec = importlib.util.spec_from_file_location("recaudo_k8s_render", K8S / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

#: Secrets the manifests read: made by an operator, or by the deployer once (README)
OPERATOR_SECRETS = {"recaudo-db-app", "recaudo-rabbitmq-default-user"}
DEPLOYER_SECRETS = {"recaudo-app", "recaudo-s3-user", "recaudo-s3-env-configuration",
                    "recaudo-gateway-tls"}


@lru_cache(maxsize=None)
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(render.render(K8S / "overlays" / overlay))


def objects(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


def _strict(schema):
    """A CRD schema that refuses unknown fields (Kubernetes prunes them silently, which
    would hide a typo), except where the CRD keeps unknown fields on purpose."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (node.get("type") == "object" and "properties" in node
                    and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # metadata is validated by the API server, not by the CRD
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


@lru_cache(maxsize=None)
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    index = json.loads((K8S / "crds" / "index.json").read_text())
    out = {}
    for entry in index:
        schema = _strict(json.loads((K8S / "crds" / entry["file"]).read_text()))
        out[(entry["apiVersion"], entry["kind"])] = jsonschema.Draft7Validator(schema)
    return out


# --- every object is valid ------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_its_schema(overlay):
    problems = []
    for obj in rendered(overlay):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        key = (obj["apiVersion"], obj["kind"])
        if key in crd_validators():
            for error in crd_validators()[key].iter_errors(obj):
                path = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{name}: {path}: {error.message[:200]}")
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{name}: {path}: {error.message[:200]}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{name}: no schema for {key} (add the CRD to deploy/k8s/crds)")
    assert not problems, "\n".join(problems)


def test_the_renderer_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(render.RenderError, match="configMapGenerator"):
        render.render(tmp_path)


def test_strict_validation_refuses_a_misspelt_field_of_a_builtin_kind():
    deployment = copy.deepcopy(objects("ha", "Deployment")["recaudo-auth"])
    deployment["spec"]["replcas"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replcas"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_strict_crd_schemas_refuse_a_misspelt_field():
    cluster = copy.deepcopy(objects("ha", "Cluster")["recaudo-db"])
    cluster["spec"]["instnaces"] = 3
    validator = crd_validators()[("postgresql.cnpg.io/v1", "Cluster")]
    assert any("instnaces" in e.message for e in validator.iter_errors(cluster))


# --- what the runner starts is what the cluster runs -------------------------------------

PYTHON_PROCESSES = [*config.SERVICES, "gateway"]


def _pod(overlay, process) -> dict:
    deployment = objects(overlay, "Deployment").get(f"recaudo-{process}")
    assert deployment, f"{overlay}: no Deployment recaudo-{process} for the runner's {process}"
    return deployment["spec"]["template"]["spec"]


def _main(overlay, process) -> dict:
    return next(c for c in _pod(overlay, process)["containers"] if c["name"] == process)


def _settings(overlay, container) -> set[str]:
    names = {e["name"] for e in container.get("env", ())}
    for source in container.get("envFrom", ()):
        config_map = objects(overlay, "ConfigMap")[source["configMapRef"]["name"]]
        names |= set(config_map["data"])
    return {n for n in names if n.startswith("RECAUDO_")}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("process", PYTHON_PROCESSES)
def test_each_process_runs_as_the_runner_runs_it(overlay, process):
    container = _main(overlay, process)
    if process == "gateway":
        assert container["args"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py",
                                     "gateway.wsgi:app"]
    else:
        assert container["args"] == ["python", "-m", "recaudo_common.run", process]
        init = {c["name"]: c for c in _pod(overlay, process).get("initContainers", ())}
        assert init.get("migrate", {}).get("args") == ["migrate", process], \
            f"{process}: its schema is migrated by an init container (advisory lock)"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("process", PYTHON_PROCESSES)
def test_each_process_gets_every_setting_it_reads(overlay, process):
    container = _main(overlay, process)
    have = _settings(overlay, container)
    needed = set(config.ENV) - config.LOCAL_ONLY - (
        set() if process == "gateway" else config.GATEWAY_ONLY)
    assert not needed - have, f"{overlay} {process} lacks {sorted(needed - have)}"
    assert not have - set(config.ENV), f"{process} sets unknown {sorted(have - set(config.ENV))}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("process", PYTHON_PROCESSES)
def test_each_process_is_probed_sized_non_root_and_given_time_to_stop(overlay, process):
    pod, container = _pod(overlay, process), _main(overlay, process)
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe in container, f"{process} has no {probe}"
    if process != "gateway":
        ready = container["readinessProbe"]["exec"]["command"]
        assert ready == ["python", "-m", "recaudo_common.healthcheck", process]
        assert container["livenessProbe"]["exec"]["command"] == \
            ["python", "-m", "recaudo_common.healthcheck", "--live", process]
    for container_ in pod["containers"] + pod.get("initContainers", []):
        for bound in ("requests", "limits"):
            got = container_.get("resources", {}).get(bound, {})
            assert {"cpu", "memory"} <= set(got), \
                f"{process}/{container_['name']} lacks {bound} of cpu and memory"
        assert container_["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["terminationGracePeriodSeconds"] >= 60, \
        f"{process}: a grace period shorter than a handler may take"


def test_the_gateway_grace_period_outlasts_gunicorn():
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "deploy" / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    for overlay in OVERLAYS:
        assert _pod(overlay, "gateway")["terminationGracePeriodSeconds"] > conf.timeout


def test_no_secret_is_in_the_repository_and_every_secret_read_is_known():
    for overlay in OVERLAYS:
        assert not objects(overlay, "Secret"), "Secrets come from the operators or the deployer"
        text = json.dumps(rendered(overlay))
        read = set(re.findall(r'"secretKeyRef": \{"name": "([^"]+)"', text))
        read |= set(re.findall(r'"secretName": "([^"]+)"', text))
        assert read <= OPERATOR_SECRETS | DEPLOYER_SECRETS, read - OPERATOR_SECRETS - DEPLOYER_SECRETS


# --- scaling -------------------------------------------------------------------------------

def _queues_of(service: str) -> list[str]:
    """The queues nameko declares for ``service``: its RPC queue and one per event handler."""
    from nameko.events import EventHandler
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

    module = import_module(f"{service}.service")
    cls = next(v for v in vars(module).values()
               if isinstance(v, type) and getattr(v, "name", None) == service)
    queues = [f"rpc-{service}"]
    for attr in dir(cls):
        for ext in getattr(getattr(cls, attr), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(ext, EventHandler):
                queues.append(f"evt-{ext.source_service}-{ext.event_type}--{service}.{attr}")
    return queues


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", config.SERVICES)
def test_each_service_scales_on_its_own_queues(overlay, service):
    scaled = objects(overlay, "ScaledObject").get(f"recaudo-{service}")
    assert scaled, f"{overlay}: no ScaledObject for {service}"
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"recaudo-{service}"
    assert scaled["spec"]["minReplicaCount"] >= 1
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["useRegex"] == "true"
    pattern = re.compile(trigger["metadata"]["queueName"])
    for queue in _queues_of(service):
        assert pattern.fullmatch(queue), f"{service}'s queue {queue} is not counted"
    for other in config.SERVICES:
        if other != service:
            for queue in _queues_of(other):
                assert not pattern.fullmatch(queue), f"{service} counts {other}'s {queue}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_served_and_scaled_on_cpu(overlay):
    service = objects(overlay, "Service")["recaudo-gateway"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "recaudo-gateway"}
    ingress = objects(overlay, "Ingress")["recaudo-gateway"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "recaudo-gateway"
    hpa = objects(overlay, "HorizontalPodAutoscaler")["recaudo-gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "recaudo-gateway"
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_the_overlays_size_the_engines_as_they_say():
    replicas = {overlay: (objects(overlay, "RabbitmqCluster")["recaudo-rabbitmq"]["spec"]["replicas"],
                          objects(overlay, "Cluster")["recaudo-db"]["spec"]["instances"])
                for overlay in OVERLAYS}
    assert replicas == {"ha": (3, 3), "single-node": (1, 1)}
    for overlay in OVERLAYS:
        config_map = objects(overlay, "ConfigMap")["recaudo-settings"]["data"]
        assert config_map["RECAUDO_DB_PREPARE_THRESHOLD"] == "none", "PgBouncer in transaction mode"
        pooler = objects(overlay, "Pooler")["recaudo-db-pooler-rw"]
        assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
