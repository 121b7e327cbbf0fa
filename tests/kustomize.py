"""Just enough of ``kubectl kustomize`` to render the suite's manifests offline (no kustomize binary here).

Supports what ``docker/kubernetes`` uses, and refuses anything else rather than guess:
``resources`` (files or folders), ``components``, ``patches`` holding RFC 6902 JSON patches
with a ``target`` (kind, name, labelSelector), and ``labels`` (metadata labels only). Order
as kustomize applies it: resources, then each component (its resources, then its patches over
everything so far), then the kustomization's own patches, then its labels.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "components", "patches", "labels"}
Resource = dict[str, Any]


class Unsupported(Exception):
    pass


def load_yaml(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def build(folder: Path) -> list[Resource]:
    """The resources a kustomization folder renders to."""
    spec = load_yaml(folder / "kustomization.yaml")[0]
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise Unsupported(f"{folder}: kustomization keys this renderer does not know: {sorted(unknown)}")
    out: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        out.extend(build(path) if path.is_dir() else load_yaml(path))
    for entry in spec.get("components", []):
        component = (folder / entry).resolve()
        if load_yaml(component / "kustomization.yaml")[0].get("kind") != "Component":
            raise Unsupported(f"{component} is not a Component")
        out = apply_component(component, out)
    for patch in spec.get("patches", []):
        apply_patch(folder, patch, out)
    for group in spec.get("labels", []):
        if set(group) - {"pairs"}:
            raise Unsupported(f"{folder}: labels options {sorted(set(group) - {'pairs'})}")
        for res in out:
            res.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    return out


def apply_component(folder: Path, accumulated: list[Resource]) -> list[Resource]:
    spec = load_yaml(folder / "kustomization.yaml")[0]
    if set(spec) - KNOWN_KEYS:
        raise Unsupported(f"{folder}: unknown keys {sorted(set(spec) - KNOWN_KEYS)}")
    out = list(accumulated)
    for entry in spec.get("resources", []):
        out.extend(load_yaml(folder / entry))
    for patch in spec.get("patches", []):
        apply_patch(folder, patch, out)
    return out


def matches(res: Resource, target: dict[str, str]) -> bool:
    meta = res.get("metadata", {})
    if "kind" in target and res.get("kind") != target["kind"]:
        return False
    if "name" in target and meta.get("name") != target["name"]:
        return False
    if "labelSelector" in target:
        labels = meta.get("labels", {})
        for term in target["labelSelector"].split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    if set(target) - {"kind", "name", "labelSelector"}:
        raise Unsupported(f"target fields {sorted(set(target) - {'kind', 'name', 'labelSelector'})}")
    return True


def apply_patch(folder: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    ops = load_yaml(folder / patch["path"])[0] if "path" in patch else yaml.safe_load(patch["patch"])
    if not isinstance(ops, list):
        raise Unsupported("only JSON 6902 patches (a list of operations)")
    targets = [r for r in resources if matches(r, patch.get("target", {}))]
    if not targets:
        raise Unsupported(f"patch {patch} matches nothing")
    for res in targets:
        for op in ops:
            json_patch(res, op)


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def json_patch(doc: Resource, op: dict[str, Any]) -> None:
    *parents, last = _pointer(op["path"])
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    kind = op["op"]
    value = copy.deepcopy(op.get("value"))
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, value)
        elif kind == "replace":
            node[index] = value
        elif kind == "remove":
            del node[index]
        else:
            raise Unsupported(f"op {kind}")
    elif kind in ("add", "replace"):
        if kind == "replace" and last not in node:
            raise KeyError(f"replace of a missing {op['path']}")
        node[last] = value
    elif kind == "remove":
        del node[last]
    else:
        raise Unsupported(f"op {kind}")
