"""manganime_ext's rooms: data flows one way, so each room imports only the rooms before it."""

import ast
from pathlib import Path
from typing import List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "manganime_ext"
# The data-flow order. A new capability is a new room: add it here, in its place.
ROOMS = ("io", "synthetic", "analysis", "data", "cli")


def imported_rooms(source: str) -> Set[str]:
    """The manganime_ext rooms a module's source imports; a relative import is reported as '<relative>'.

    Absolute imports only: ``from . import io`` inside the package is exactly the shadowing of the
    stdlib's ``io`` a reader would trip over, so relative imports are refused outright.
    """
    rooms = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            rooms.add("<relative>")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "manganime_ext":
                rooms.update(parts[1:2] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "manganime_ext" and len(parts) > 1:
                    rooms.add(parts[1])
    return rooms


def backward_imports(room: str, source: str) -> List[str]:
    """Rooms imported by a module of ``room`` that come later in the flow (or are unknown, or relative)."""
    position = ROOMS.index(room)
    return sorted(r for r in imported_rooms(source) if r not in ROOMS[: position + 1])


def test_checker_sees_every_import_form():
    source = ("import os\nimport manganime_ext.io.video\nfrom manganime_ext.data.export import ExportError\n"
              "from manganime_ext import analysis\nfrom manganime_ext.synthetic import anime as a\n")
    assert imported_rooms(source) == {"io", "data", "analysis", "synthetic"}
    assert backward_imports("analysis", source) == ["data"]
    assert backward_imports("data", source) == []
    assert backward_imports("io", "from . import video\n") == ["<relative>"]
    assert backward_imports("io", "def f():\n    from manganime_ext.cli.errors import UserError\n") == ["cli"]


def test_every_module_lives_in_a_room():
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py"], "modules belong in a room, not beside them"
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert packages == sorted(ROOMS), "a new room must be placed in ROOMS, in data-flow order"
    for room in ROOMS:
        modules = [p for p in (PACKAGE / room).rglob("*.py") if p.name != "__init__.py"]
        assert modules, f"{room}/ is an empty placeholder"


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_earlier_rooms(room):
    offenders = {}
    for path in sorted((PACKAGE / room).rglob("*.py")):
        later = backward_imports(room, path.read_text())
        if later:
            offenders[str(path.relative_to(ROOT))] = later
    assert offenders == {}, f"imports against the data flow {' -> '.join(ROOMS)}"


def test_entry_point_only_assembles_commands():
    tree = ast.parse((ROOT / "dataset_tool_anime.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules and all(m == "click" or m.startswith("manganime_ext.cli.") for m in modules), modules
    functions = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert functions == ["cli"], "commands live in manganime_ext.cli, not in the entry point"
