"""Reading a routing table file: YAML in, a validated spec out, or every problem with its line."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sidecar.config import schema
from sidecar.config.limits import ttl_findings
from sidecar.config.schema import RoutingTableSpec, cross_check
from sidecar.errors import ConfigError

_Path = tuple[str | int, ...]
_LINE = re.compile(r"\(line (\d+)\)")


@dataclass(frozen=True, slots=True)
class TableFile:
    """A routing table file, read and validated in full."""

    spec: RoutingTableSpec
    digest: str  # of the file's bytes: a reload of an unchanged file builds nothing


def read(path: Path) -> TableFile:
    """The one way from a path to a validated table: ``check``, start-up and reload use it.

    Raises :class:`ConfigError` listing every problem: unreadable, not UTF-8, not YAML, or
    not a valid table.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read the file: {err.strerror or err}"]) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), [f"not UTF-8 text: {err}"]) from err
    return TableFile(parse(text, str(path)), hashlib.sha256(data).hexdigest())


def parse(text: str, source: str) -> RoutingTableSpec:
    """Validate ``text`` in full; raise :class:`ConfigError` listing every problem found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        if isinstance(err, yaml.MarkedYAMLError):
            for mark in (err.context_mark, err.problem_mark):
                if mark is not None:
                    mark.name = source  # not "<unicode string>"
        raise ConfigError(source, [f"not valid YAML: {err}"]) from err
    lines: dict[_Path, int] = {}
    problems: list[str] = []
    if node is not None:
        _index(node, (), lines, problems)
    if not isinstance(data, dict):
        raise ConfigError(source, ["the routing table must be a YAML mapping (version, zones...)"])
    spec: RoutingTableSpec | None = None
    try:
        spec = RoutingTableSpec.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            where = _where(data, error["loc"], missing=error["type"] == "missing")
            problems.append(f"{_describe(where, lines)}: {_message(error)}")
    findings = [*cross_check(data), *ttl_findings(data)]
    problems += [f"{_describe(where, lines)}: {why}" for where, why in findings]
    if problems or spec is None:
        raise ConfigError(source, sorted(problems, key=_line))
    return spec


def _index(node: yaml.Node, path: _Path, lines: dict[_Path, int], problems: list[str]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                problems.append(f"{_dotted((*path, key))} (line {line}): duplicate key")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, problems)


def _where(data: Any, loc: tuple[str | int, ...], *, missing: bool) -> _Path:
    """The error location as a path in the data.

    pydantic puts union tags (``cloudflare``, ``secretRef``...) in the location; they are not
    keys of the data and are skipped; a missing key is the one part not found that is kept.
    """
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        last = missing and position == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        elif last:
            pass
        else:
            continue
        path.append(part)
    return tuple(path)


def _dotted(path: _Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(path: _Path, lines: dict[_Path, int]) -> str:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return f"{_dotted(path)} (line {line})"
    return _dotted(path)


def _line(problem: str) -> int:
    """The line a problem names, for sorting (problems without one come first)."""
    found = _LINE.search(problem)
    return int(found.group(1)) if found else 0


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for model in vars(schema).values():
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys |= {field.alias or name for name, field in model.model_fields.items()}
    return keys


def _message(error: Any) -> str:
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        near = difflib.get_close_matches(key, _known_keys() - {key}, n=1, cutoff=0.6)
        return f"unknown key (did you mean {near[0]!r}?)" if near else "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "string_type" and isinstance(error["input"], bool):
        return "YAML reads an unquoted yes/no/on/off/true/false as a boolean, not a name: quote it"
    if error["type"] == "string_type" and isinstance(error["input"], int | float):
        value = error["input"]
        return f"YAML reads {value} as a number, not a name: quote it ('{value}')"
    return message
