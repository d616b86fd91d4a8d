"""The layout of docs/architecture.md: rule file ↔ subpackage ↔ CLI module, no import
cycles, modules readable in one sitting."""

from __future__ import annotations

import ast
import re

import pytest

from brainpad.cli import STAGES, build_parser
from conftest import REPO

SRC = REPO / "src" / "brainpad"
RULES = REPO / "workflow" / "rules"
STAGE_FILES = sorted(p for p in RULES.glob("*.smk") if p.stem != "common")
MAX_LINES = 420  # "about 400": a module read in one sitting


def _commands(rule_file) -> set[str]:
    """The `brainpad <command>`s the rules of ``rule_file`` run."""
    return set(re.findall(r"brainpad ([a-z][a-z-]*)", rule_file.read_text()))


@pytest.mark.parametrize("rule_file", STAGE_FILES, ids=lambda p: p.name)
def test_every_rule_file_has_its_subpackage_and_cli_module(rule_file):
    stage = rule_file.stem
    assert (SRC / stage / "__init__.py").is_file(), f"no src/brainpad/{stage}/"
    cli = next((m for m in STAGES if m.__name__ == f"brainpad.cli.{stage}"), None)
    assert cli is not None, f"no src/brainpad/cli/{stage}.py"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    mine = {
        name for name, p in sub.choices.items() if p.get_default("func").__module__ == cli.__name__
    }
    assert _commands(rule_file) <= mine, f"{rule_file.name} runs commands of other stages"


def test_the_architecture_page_lists_every_rule_file_and_command():
    page = (REPO / "docs" / "architecture.md").read_text()
    table = page.split("## What is in each subpackage")[0]
    for rule_file in STAGE_FILES:
        assert f"`{rule_file.name}`" in table
        for command in _commands(rule_file):
            assert f"`{command}`" in table, command


def _module_name(path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path, modules) -> set[str]:
    """brainpad modules imported when ``path`` is imported (not inside functions or
    ``if TYPE_CHECKING:``); ``from package import submodule`` counts the submodule."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brainpad"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("brainpad")}
    return found


def test_module_imports_have_no_cycle():
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {
        name: {m for m in _top_level_imports(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_are_readable_in_one_sitting(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
