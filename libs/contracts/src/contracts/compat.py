"""Is a new JSON Schema of an event still compatible with the one we published?

Compatible means consumers built on the old schema keep working and messages written under the
old schema still validate: a property may be added when it is optional, nothing else may change.
Incompatible: a property removed, a property newly required, a type changed, an enum (or const)
value removed, values newly restricted to an enum. Such a change needs a new `version`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]


def compatibility_problems(old_schema: Schema, new_schema: Schema) -> list[str]:
    """What in `new_schema` breaks readers or writers of `old_schema`; empty when compatible."""
    problems: list[str] = []
    _compare(_Side(old_schema), _Side(new_schema), old_schema, new_schema, "$", problems, set())
    return problems


class _Side:
    """One schema document, for resolving its local `$ref`s."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, node: Schema) -> Schema:
        seen: set[str] = set()
        while "$ref" in node:
            ref = str(node["$ref"])
            if ref in seen or not ref.startswith("#/"):
                break
            seen.add(ref)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def branches(self, node: Schema) -> list[Schema]:
        """The alternatives a value may match (anyOf/oneOf flattened), refs resolved."""
        node = self.resolve(node)
        alternatives = node.get("anyOf") or node.get("oneOf")
        if not alternatives:
            return [node]
        return [branch for alt in alternatives for branch in self.branches(alt)]


def _types(branches: list[Schema]) -> set[str]:
    types: set[str] = set()
    for branch in branches:
        declared = branch.get("type")
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(declared)
        elif "properties" in branch:
            types.add("object")
    return types


def _values(branches: list[Schema]) -> list[Any] | None:
    """The closed set of allowed values, or None when any value of the type is allowed."""
    values: list[Any] = []
    for branch in branches:
        if "const" in branch:
            values.append(branch["const"])
        elif "enum" in branch:
            values.extend(branch["enum"])
        elif branch.get("type") != "null":
            return None
    return values


def _compare(
    old: _Side,
    new: _Side,
    old_node: Schema,
    new_node: Schema,
    path: str,
    problems: list[str],
    seen: set[tuple[int, int]],
) -> None:
    key = (id(old.resolve(old_node)), id(new.resolve(new_node)))
    if key in seen:  # recursive schemas: each pair of nodes is compared once
        return
    seen.add(key)
    old_branches, new_branches = old.branches(old_node), new.branches(new_node)

    old_types, new_types = _types(old_branches), _types(new_branches)
    if old_types and new_types and old_types != new_types:
        problems.append(f"{path}: type changed from {_fmt(old_types)} to {_fmt(new_types)}")
        return

    old_values, new_values = _values(old_branches), _values(new_branches)
    if new_values is not None:
        if old_values is None:
            problems.append(f"{path}: values newly restricted to {_fmt(new_values)}")
        else:
            removed = [v for v in old_values if v not in new_values]
            if removed:
                problems.append(f"{path}: enum value(s) removed: {_fmt(removed)}")

    old_object, new_object = _first(old_branches, "object"), _first(new_branches, "object")
    if old_object is not None and new_object is not None:
        old_props: Mapping[str, Schema] = old_object.get("properties", {})
        new_props: Mapping[str, Schema] = new_object.get("properties", {})
        for name in old_props:
            if name not in new_props:
                problems.append(f"{path}.{name}: property removed")
        old_required = set(old_object.get("required", ()))
        for name in new_object.get("required", ()):
            if name not in old_required:
                problems.append(f"{path}.{name}: property newly required")
        for name, old_prop in old_props.items():
            if name in new_props:
                _compare(old, new, old_prop, new_props[name], f"{path}.{name}", problems, seen)

    old_array, new_array = _first(old_branches, "array"), _first(new_branches, "array")
    if old_array is not None and new_array is not None:
        if "items" in old_array and "items" in new_array:
            _compare(old, new, old_array["items"], new_array["items"], f"{path}[]", problems, seen)


def _first(branches: list[Schema], json_type: str) -> Schema | None:
    for branch in branches:
        declared = branch.get("type")
        if declared == json_type or (json_type == "object" and "properties" in branch):
            return branch
    return None


def _fmt(values: Any) -> str:
    return ", ".join(sorted(repr(v) if not isinstance(v, str) else v for v in values))
