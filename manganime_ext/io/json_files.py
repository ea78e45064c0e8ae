"""JSON files the tools read and write: one-line errors on read, atomic writes."""

import json
from typing import Any, Type

from manganime_ext.io.outputs import atomic_file


class JSONFileError(ValueError):
    """A JSON file that cannot be read or parsed; one line naming it."""


def read_json(path: str, error: Type[Exception] = JSONFileError, what: str = "JSON") -> Any:
    """Parse ``path``; an unreadable file or bad JSON raises ``error`` with one line naming the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read {what} ({e})") from None


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` (indented) so that ``path`` holds either the old or the complete new file, never half of one."""
    with atomic_file(path) as f:
        f.write(json.dumps(obj, indent=1).encode())
