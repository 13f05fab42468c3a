"""A small kustomize renderer for tests: the features deploy/k8s uses, and nothing else.

No kustomize binary and no PyPI package renders kustomizations offline, so this does what
`kubectl kustomize DIR` does for: `resources` (files, or folders with their own
kustomization), `namespace`, `images` (newName/newTag) and `patches` given by `path`
(strategic merge for built-in kinds, whose lists of named items merge by name; JSON merge
patch for custom resources, whose lists are replaced, as kustomize does without their
schema). Any other field is refused, so a manifest never relies on something not rendered.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Json = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class KustomizeError(ValueError):
    pass


def documents(path: Path) -> list[Json]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def builtin(obj: Json) -> bool:
    """Core and apps/policy/... kinds (no dotted group): strategic merge applies."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return "." not in group


def merge(target: Any, patch: Any, strategic: bool) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, strategic)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    named = (
        strategic
        and isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*target, *patch])
    )
    if named:
        merged_list = [dict(i) for i in target]
        for item in patch:
            at = next((n for n, i in enumerate(merged_list) if i["name"] == item["name"]), None)
            if at is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[at] = merge(merged_list[at], item, strategic)
        return merged_list
    return copy.deepcopy(patch)


def containers(obj: Json) -> list[Json]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else spec
    found: list[Json] = [*pod.get("containers", []), *pod.get("initContainers", [])]
    return found


def render(directory: Path) -> list[Json]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{directory}: this renderer does not do {sorted(unknown)}")
    objects: list[Json] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects.extend(render(path) if path.is_dir() else documents(path))
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{directory}: only patches by path: {patch}")
        for change in documents(directory / patch["path"]):
            matches = [
                n
                for n, o in enumerate(objects)
                if o["kind"] == change["kind"]
                and o["metadata"]["name"] == change["metadata"]["name"]
            ]
            if len(matches) != 1:
                raise KustomizeError(f"{patch['path']}: {len(matches)} targets")
            (at,) = matches
            objects[at] = merge(objects[at], change, strategic=builtin(objects[at]))
    if namespace := kustomization.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in containers(obj):
                name = str(container["image"]).split("@")[0].rsplit(":", 1)[0]
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    seen = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    if len(seen) != len(set(seen)):
        raise KustomizeError(f"{directory}: an object is defined twice")
    return objects
