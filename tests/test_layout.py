"""manganime_ext's rooms: data flows one way, so each room imports only the rooms before it."""

import ast
from pathlib import Path
from typing import List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "manganime_ext"
# The data-flow order, level by level (house style); rooms of one level are siblings and do not import
# each other. A new capability is a new room: add it here, in its place. Planned rooms may be absent.
LEVELS = (("io",), ("synthetic",), ("analysis",), ("data",), ("conditioning", "projection", "tagger"), ("demo",),
          ("cli",))
ROOMS = tuple(room for level in LEVELS for room in level)


def allowed(room: str) -> Set[str]:
    """The rooms a module of ``room`` may import: its own, and every room of an earlier level."""
    level = next(i for i, rooms in enumerate(LEVELS) if room in rooms)
    return {room} | {r for rooms in LEVELS[:level] for r in rooms}


def imported_rooms(source: str, depth: int = 1) -> Set[str]:
    """The other manganime_ext rooms a module's source imports; ``depth``: package levels between the module
    and its room (1 for ``room/module.py``).

    A relative import that stays inside the room (``from .loss import ...``) is the room's own business.
    One that leaves it is reported as '<relative>': another room is always named in full, so that
    ``io`` never reads as the stdlib's.
    """
    rooms = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.level > depth:
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


def backward_imports(room: str, source: str, depth: int = 1) -> List[str]:
    """Rooms imported by a module of ``room`` that are not before it in the flow (or unknown, or relative)."""
    return sorted(imported_rooms(source, depth) - allowed(room))


def test_checker_sees_every_import_form():
    source = ("import os\nimport manganime_ext.io.video\nfrom manganime_ext.data.export import ExportError\n"
              "from manganime_ext import analysis\nfrom manganime_ext.synthetic import anime as a\n")
    assert imported_rooms(source) == {"io", "data", "analysis", "synthetic"}
    assert backward_imports("analysis", source) == ["data"]
    assert backward_imports("data", source) == []
    assert backward_imports("io", "from . import video\nfrom .json_files import read_json\n") == []
    assert backward_imports("analysis", "from .. import io\n") == ["<relative>"]
    assert backward_imports("analysis", "from ..io import video\n") == ["<relative>"]
    assert backward_imports("analysis", "from .. import frames\n", depth=2) == []
    assert backward_imports("io", "def f():\n    from manganime_ext.cli.errors import UserError\n") == ["cli"]
    assert backward_imports("projection", "from manganime_ext.conditioning import loss\n") == ["conditioning"]
    assert backward_imports("cli", source + "import manganime_ext.tagger.server\n") == []


def test_every_module_lives_in_a_room():
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py"], "modules belong in a room, not beside them"
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert set(packages) <= set(ROOMS), "a new room must be placed in LEVELS, in data-flow order"
    assert {"io", "synthetic", "analysis", "data", "cli"} <= set(packages)
    for room in packages:
        modules = [p for p in (PACKAGE / room).rglob("*.py") if p.name != "__init__.py"]
        assert modules, f"{room}/ is an empty placeholder"


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_earlier_rooms(room):
    offenders = {}
    for path in sorted((PACKAGE / room).rglob("*.py")):  # nothing to check for a planned room not yet there
        later = backward_imports(room, path.read_text(), depth=len(path.relative_to(PACKAGE / room).parts))
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
