"""The JSON Schema (draft 2020-12) of the spec format, generated from the key table."""

from __future__ import annotations

from typing import Any

from .fields import FIELDS, FORMAT, GRID_SECTIONS, SECTIONS, ZOO_NAME, Field

# --------------------------------------------------------------------------- JSON Schema


def _field_schema(spec_field: Field) -> dict:
    kind = spec_field.kind
    out: dict[str, Any] = {"description": spec_field.doc}
    if spec_field.default is not None and not spec_field.required:
        out["default"] = spec_field.default
    number_bounds = {}
    if spec_field.minimum is not None:
        key = "exclusiveMinimum" if spec_field.exclusive_minimum else "minimum"
        number_bounds[key] = spec_field.minimum
    if spec_field.maximum is not None:
        number_bounds["maximum"] = spec_field.maximum
    if kind == "int":
        out.update(type="integer", **number_bounds)
    elif kind == "int_or_null":
        out["anyOf"] = [{"type": "integer", **number_bounds}, {"type": "null"}]
    elif kind == "int_or_auto":
        out["anyOf"] = [{"type": "integer", **number_bounds}, {"const": "auto"}]
    elif kind == "float":
        out.update(type="number", **number_bounds)
    elif kind == "bool":
        out["type"] = "boolean"
    elif kind == "str":
        out["type"] = "string"
    elif kind == "choice":
        out["enum"] = spec_field.allowed()
    elif kind == "init":  # a plain name, or name(arguments) as modelzoo/init.py reads it
        names = "|".join(spec_field.allowed() or [])
        out.update(type="string", pattern=rf"^\s*({names})\s*(\(.*\))?\s*$")
    elif kind == "dict":
        out["type"] = "object"
    elif kind == "int_list":
        out.update(type="array", items={"type": "integer"}, minItems=1)
    elif kind == "stored_epochs":
        out["anyOf"] = [
            {"const": "all"},
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            {"type": "object", "properties": {"every": {"type": "integer", "minimum": 1},
                                              "first": {"type": "integer", "minimum": 0}},
             "required": ["every"], "additionalProperties": False},
        ]  # fmt: skip
    return out


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the spec format, for editors and CI checks."""

    def section(name: str) -> dict:
        fields = FIELDS[name]
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: _field_schema(f) for k, f in fields.items()},
            "required": [k for k, f in fields.items() if f.required],
        }

    grid_props = {}
    for section_name in GRID_SECTIONS:
        for leaf, spec_field in FIELDS[section_name].items():
            grid_props[f"{section_name}.{leaf}"] = {
                "type": "array",
                "minItems": 1,
                "items": _field_schema(spec_field),
            }
    for leaf, spec_field in FIELDS["training"].items():
        grid_props[leaf] = {"type": "array", "minItems": 1, "items": _field_schema(spec_field)}
    top = section("")
    top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    top["title"] = "modelzoo zoo spec"
    top["properties"]["format"] = {"const": FORMAT}
    top["properties"]["name"]["pattern"] = f"^{ZOO_NAME.pattern}$"
    for name in SECTIONS:
        top["properties"][name] = section(name)
    top["properties"]["grid"] = {"type": "object", "additionalProperties": False,
                                 "properties": grid_props}  # fmt: skip
    top["required"] = ["name", "dataset", "architecture", "training"]
    return top


def describe_fields() -> list[tuple[str, Field]]:
    """(dotted key, field) for every key, in table order: used to write docs/specs.md."""
    return [(f"{s}.{k}" if s else k, f) for s, fields in FIELDS.items() for k, f in fields.items()]
