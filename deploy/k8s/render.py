"""Render a Kustomize overlay without kubectl (none is installable on the development
machines): ``python deploy/k8s/render.py deploy/k8s/overlays/ha`` prints the YAML
``kubectl kustomize`` would, for the part of Kustomize these manifests use:

    resources   files, or directories holding a kustomization.yaml (rendered first)
    namespace   set on every namespaced object
    labels      ``pairs`` added to every object's metadata.labels (and to pod templates'
                with ``includeTemplates``; ``includeSelectors`` is not supported)
    images      ``name`` -> ``newName`` / ``newTag`` in every container and init container
    patches     inline JSON 6902 patches, ``target`` by kind and optional exact name

Any other field of a kustomization is refused, so this never quietly renders something
other than what kubectl would. tests/unit/test_k8s_manifests.py renders every overlay
with it and validates the result offline.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
#: kinds that live outside any namespace (the rest get the overlay's namespace)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "StorageClass", "PersistentVolume", "ClusterTriggerAuthentication"}


class RenderError(ValueError):
    pass


def render(directory: Path) -> list[dict]:
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise RenderError(f"{directory}: kustomization fields this renderer does not know: "
                          f"{sorted(unknown)}")
    objects: list[dict] = []
    for entry in kustomization.get("resources", ()):
        path = directory / entry
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", ()):
        _apply_patch(objects, patch, directory)
    for image in kustomization.get("images", ()):
        _set_image(objects, image)
    for label in kustomization.get("labels", ()):
        if label.get("includeSelectors") or set(label) - {"pairs", "includeTemplates"}:
            raise RenderError(f"{directory}: labels support pairs and includeTemplates only")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
            template = obj.get("spec", {}).get("template")
            if label.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _apply_patch(objects: list[dict], patch: dict, directory: Path) -> None:
    target = patch.get("target") or {}
    if set(target) - {"kind", "name"} or "kind" not in target or "patch" not in patch:
        raise RenderError(f"{directory}: only inline JSON 6902 patches with a target kind "
                          f"(and name) are supported: {patch}")
    matched = [o for o in objects if o["kind"] == target["kind"]
               and ("name" not in target or o["metadata"]["name"] == target["name"])]
    if not matched:
        raise RenderError(f"{directory}: patch target {target} matches nothing")
    for obj in matched:
        for op in yaml.safe_load(patch["patch"]):
            _json_patch(obj, op)


def _json_patch(obj: dict, op: dict) -> None:
    if op["op"] not in ("replace", "add", "remove"):
        raise RenderError(f"unsupported JSON patch op {op['op']}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent = obj
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op["op"] == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
        elif op["op"] == "replace":
            parent[index] = copy.deepcopy(op["value"])
        else:
            del parent[index]
        return
    if op["op"] == "replace" and last not in parent:
        raise RenderError(f"replace of a missing path {op['path']}")
    if op["op"] == "remove":
        del parent[last]
    else:
        parent[last] = copy.deepcopy(op["value"])


def _set_image(objects: list[dict], image: dict) -> None:
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = (f"{image.get('newName', name)}:"
                                      f"{image.get('newTag', tag or 'latest')}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(yaml.safe_dump_all(render(Path(argv[0])), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
