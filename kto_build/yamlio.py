"""YAML with line numbers, and a small declarative validator.

Every mapping and list loaded here remembers the line it started on and the
line of each key, so that validation errors can say ``sources.yml:12: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import KtoBuildError, did_you_mean


class YMap(dict):
    """A mapping that knows its file, its own line and each key's line."""

    path: str = ""
    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YList(list):
    path: str = ""
    line: int = 0
    item_lines: list


def _loader_for(path: str, fast: bool = False):
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

    class Loader(base):
        pass

    def construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        m = YMap()
        m.path, m.line, m.key_lines = path, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise KtoBuildError("mapping keys must be plain words", path, key_node.start_mark.line + 1)
            if key in m:
                raise KtoBuildError(f"duplicate key '{key}'", path, key_node.start_mark.line + 1)
            m[key] = loader.construct_object(value_node, deep=True)
            m.key_lines[key] = key_node.start_mark.line + 1
        return m

    def construct_sequence(loader, node, deep=False):
        seq = YList(loader.construct_object(child, deep=True) for child in node.value)
        seq.path, seq.line = path, node.start_mark.line + 1
        seq.item_lines = [child.start_mark.line + 1 for child in node.value]
        return seq

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_yaml(path: str | Path, display: str | None = None, cache=None) -> Any:
    """Load one YAML file; syntax errors become one-line KtoBuildErrors.

    With a ``yaml_cache.YamlCache`` a file whose text was parsed before comes from there (the same YMaps,
    lines and all) without importing yaml; only files that parsed cleanly are kept, so every error
    message still comes from the parser.
    """
    shown = display or str(path)
    text = Path(path).read_text(encoding="utf-8")
    if cache is not None:
        hit = cache.lookup(shown, text)
        if hit is not None:
            return hit
    data = _parse(text, shown)
    if cache is not None:
        cache.store(shown, text, data)
    return data


def _parse(text: str, shown: str) -> Any:
    import yaml

    try:
        try:  # libyaml's parser when there is one (~10x faster); its errors are worded by the Python parser
            data = yaml.load(text, Loader=_loader_for(shown, fast=True))  # noqa: S506 - SafeLoader subclass
        except yaml.MarkedYAMLError:
            data = yaml.load(text, Loader=_loader_for(shown))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise KtoBuildError(f"invalid YAML: {exc.problem or exc.context}", shown, line, col) from None
    if data is None:
        data = YMap()
        data.path, data.line, data.key_lines = shown, 1, {}
    return data


# --------------------------------------------------------------------------- validation

_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


@dataclass
class Spec:
    """What a value must look like."""

    kind: str  # scalar | map | dict | list | oneof | any
    types: tuple = ()
    fields: dict = field(default_factory=dict)
    required: tuple = ()
    value: Spec | None = None
    options: tuple = ()
    choices: tuple = ()
    what: str = ""

    def describe(self) -> str:
        if self.what:
            return self.what
        if self.kind == "scalar":
            if self.choices:
                return "one of " + ", ".join(repr(c) for c in self.choices)
            return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        return {"map": "a mapping", "dict": "a mapping", "list": "a list", "any": "anything"}.get(self.kind, self.kind)

    def to_json_schema(self) -> dict:
        """The same rule as JSON Schema (draft 2020-12), for editors: what ``validate`` accepts, it accepts."""
        out = _JSON_SCHEMA[self.kind](self)
        if self.what:
            out["description"] = self.what
        return out


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _scalar_schema(spec: Spec) -> dict:
    if spec.choices:
        return {"enum": list(spec.choices)}
    names = [_JSON_TYPES[t] for t in spec.types]
    if "number" in names and "integer" in names:
        names.remove("integer")  # a JSON number includes the whole numbers
    return {"type": names[0] if len(names) == 1 else names}


_JSON_SCHEMA = {
    "any": lambda spec: {},
    "scalar": _scalar_schema,
    "map": lambda spec: {"type": "object", "properties": {k: v.to_json_schema() for k, v in spec.fields.items()},
                         **({"required": list(spec.required)} if spec.required else {}),
                         "additionalProperties": False},
    "dict": lambda spec: {"type": "object", "additionalProperties": spec.value.to_json_schema()},
    "list": lambda spec: {"type": "array", "items": spec.value.to_json_schema()},
    "oneof": lambda spec: {"anyOf": [o.to_json_schema() for o in spec.options]},
}


def Scalar(*types, choices=(), what=""):  # noqa: N802 - reads like a type
    return Spec("scalar", types=types, choices=tuple(choices), what=what)


STR = Scalar(str)
INT = Scalar(int)
NUM = Scalar(int, float)
BOOL = Scalar(bool)
ANY = Spec("any")
SCALAR = Scalar(str, int, float, bool, what="a plain value")


def Map(fields: dict, required=(), what=""):  # noqa: N802
    return Spec("map", fields=fields, required=tuple(required), what=what)


def Dict(value: Spec, what=""):  # noqa: N802
    return Spec("dict", value=value, what=what)


def List(item: Spec, what=""):  # noqa: N802
    return Spec("list", value=item, what=what)


def OneOf(*options: Spec, what=""):  # noqa: N802
    return Spec("oneof", options=options, what=what)


def _matches(spec: Spec, value: Any) -> bool:
    if spec.kind == "any":
        return True
    if spec.kind == "scalar":
        if isinstance(value, bool) and bool not in spec.types:
            return False
        if not isinstance(value, spec.types):
            return False
        return not spec.choices or value in spec.choices
    if spec.kind in ("map", "dict"):
        return isinstance(value, dict)
    if spec.kind == "list":
        return isinstance(value, list)
    return any(_matches(o, value) for o in spec.options)


def validate(value: Any, spec: Spec, where: str, path: str, line: int) -> None:
    """Raise a KtoBuildError naming file:line if ``value`` does not fit ``spec``."""
    if spec.kind == "any":
        return
    if spec.kind == "oneof":
        for option in spec.options:
            if _matches(option, value):
                validate(value, option, where, path, line)
                return
        raise KtoBuildError(f"{where} must be {spec.describe()}, got {_show(value)}", path, line)
    if not _matches(spec, value):
        raise KtoBuildError(f"{where} must be {spec.describe()}, got {_show(value)}", path, line)
    if spec.kind == "map":
        known = spec.fields
        for key in value:
            kline = key_line(value, key, default=line)
            if key not in known:
                hint = did_you_mean(str(key), known) or "known keys: " + ", ".join(sorted(known))
                raise KtoBuildError(f"unknown key '{key}' in {where}", path, kline, hint=hint)
            validate(value[key], known[key], f"'{key}' in {where}", path, kline)
        for key in spec.required:
            if key not in value:
                raise KtoBuildError(f"{where} is missing the required key '{key}'", path, getattr(value, "line", line))
    elif spec.kind == "dict":
        for key, item in value.items():
            kline = key_line(value, key, default=line)
            validate(item, spec.value, f"'{key}'", path, kline)
    elif spec.kind == "list":
        lines = getattr(value, "item_lines", None) or [line] * len(value)
        for i, item in enumerate(value):
            validate(item, spec.value, f"item {i + 1} of {where}", path, lines[i])


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return f"{type(value).__name__} {value!r}"


def key_line(obj: Any, *keys: str, default: int = 0) -> int:
    """The YAML line of ``obj[keys[0]][keys[1]]...``: the deepest key found; with no key found, the
    mapping's own line (or ``default`` for an object loaded without lines). The one way to find the line
    of a config key (``YMap.line_of`` is its one-key case; nodes call ``Node.line_of``)."""
    line = getattr(obj, "line", 0) or default
    for key in keys:
        if not isinstance(obj, YMap):
            break
        line = obj.line_of(key)
        obj = obj.get(key)
    return line


def tag_list(value: Any) -> list[str]:
    """``tags:`` as written (absent, one tag, or a list) -> a list: the one normalisation of tags."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
