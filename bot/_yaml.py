"""YAML loading that remembers where each mapping and list started.

Flow files are edited by program admins, so a validation error must point at
the file and line to fix. The loader returns plain dicts and lists (subclassed
to carry a ``line`` attribute) and rejects duplicate keys, which plain PyYAML
silently overwrites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class LineDict(dict):
    """A mapping from a YAML file, with the 1-based line where it starts and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A sequence from a YAML file, with the 1-based line where it starts."""

    line: int = 0


class FlowFileError(Exception):
    """A flow file that cannot be parsed as YAML, or breaks a YAML rule we add."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the second one would replace the first)", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.line = node.start_mark.line + 1
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_file(path: Path) -> Any:
    """Parse one YAML file into LineDict / LineList values.

    Raises:
        FlowFileError: the file is missing, unreadable or not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowFileError(path, 0, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowFileError(path, 0, f"cannot read the file: {exc}") from None

    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise FlowFileError(path, line, f"invalid YAML: {exc.problem or exc}") from None


def line_of(document: Any, location: tuple[Any, ...]) -> int:
    """Return the line of the deepest node on ``location`` that carries one.

    ``location`` is a path of keys and indexes, as pydantic reports it for a
    validation error. A key that does not exist (a missing field) stops the
    walk, so the error points at the mapping that lacks it. A scalar value
    carries no line, so its key's line is used.
    """
    line = getattr(document, "line", 0)
    node = document
    for step in location:
        parent = node
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
        key_line = getattr(parent, "key_lines", {}).get(step, line)
        line = getattr(node, "line", key_line)
    return line
