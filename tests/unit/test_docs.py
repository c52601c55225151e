"""The README and docs/ stay true: links resolve, every setting and option is documented, every
`renamer-ray` command shown parses, code they name exists, the layers drawn are the imports' own,
and the README stays a front door."""

from __future__ import annotations

import argparse
import ast
import contextlib
import graphlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

from renamer_ray.cli.parser import build_parser
from renamer_ray.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 250

FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHELL_BLOCKS = ("", "bash", "sh", "shell", "console")


def _prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text)


def _blocks(page: Path, languages: tuple[str, ...]) -> list[str]:
    return [body for language, body in FENCE.findall(page.read_text()) if language in languages]


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _relative_links(page: Path) -> list[str]:
    return [link for link in LINK.findall(_prose(page.read_text()))
            if not re.match(r"^[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    broken = []
    for link in _relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no such heading in {target.name}")
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_is_a_front_door_that_links_every_docs_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the reference belongs in docs/"
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _relative_links(README)}
    assert not [page.name for page in DOCS if page not in linked], "docs pages the README does not link"


def test_ci_runs_exactly_the_readmes_test_command():
    quick_start = README.read_text().split("## Quick start", 1)[1]
    commands = [line.split("#")[0].strip() for line in FENCE.search(quick_start).group(2).splitlines()]
    assert [command for command in commands if command] == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "make test"
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
    assert {"demo", "test"} <= set(targets)


# --- configuration.md: every setting, its default -------------------------------------------------

CONFIGURATION = ROOT / "docs" / "configuration.md"
SETTING_ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", re.M)


def _settings_rows() -> dict[str, str]:
    """Setting -> its default cell, from the tables before 'Other environment variables'."""
    settings_part = CONFIGURATION.read_text().split("## Other environment variables")[0]
    return dict(SETTING_ROW.findall(settings_part))


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def test_every_setting_is_in_configuration_md_with_its_default():
    rows = _settings_rows()
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    assert not sorted(set(fields) - set(rows)), "settings missing from docs/configuration.md"
    assert not sorted(set(rows) - set(fields)), "rows of docs/configuration.md that are no setting"
    wrong = []
    for name, cell in rows.items():
        default = fields[name].get_default(call_default_factory=True)
        shown = re.match(r"`([^`]*)`", cell.strip())
        if cell.strip() == "—":
            ok = default in (None, "")
        elif shown and shown.group(1) in fields:   # "defaults to another setting", e.g. ENGINE_MODEL
            ok = default is None
        else:
            ok = shown is not None and shown.group(1) == _shown(default)
        if not ok:
            wrong.append(f"{name}: documented {cell.strip()!r}, default {default!r}")
    assert not wrong


# --- cli.md: every command and option; every command shown parses ---------------------------------

CLI = ROOT / "docs" / "cli.md"


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions if not isinstance(action, argparse._HelpAction)
            for option in action.option_strings]


def test_every_command_and_option_is_in_cli_md():
    parser = build_parser()
    text = CLI.read_text()
    missing = [f"renamer-ray {name}" for name in _commands(parser) if f"`renamer-ray {name}" not in text]
    for command, sub in [("", parser), *_commands(parser).items()]:
        missing += [f"{command} {option}".strip() for option in _options(sub)
                    if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)]
    assert not missing, "not in docs/cli.md"


def _shown_commands() -> list[tuple[str, list[str]]]:
    """Every `renamer-ray …` command in the shell blocks of the README and docs/, as its argv."""
    shown = []
    for page in PAGES:
        for block in _blocks(page, SHELL_BLOCKS):
            for line in block.replace("\\\n", " ").splitlines():
                if "renamer-ray" not in line:
                    continue
                words = shlex.split(line, comments=True)
                for i, word in enumerate(words):
                    starts = i == 0 or words[i - 1] == "--" or all(re.match(r"^\w+=", w) for w in words[:i])
                    if Path(word).name == "renamer-ray" and starts:
                        argv = words[i + 1:]
                        ends = [j for j, w in enumerate(argv) if w in ("&&", "||", ";", "|", ">")]
                        shown.append((f"{page.name}: {line.strip()}", argv[:ends[0]] if ends else argv))
    return shown


def test_every_renamer_ray_command_shown_parses():
    shown = _shown_commands()
    assert len(shown) > 20
    refused = []
    for where, argv in shown:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
                build_parser().parse_args(argv)
        except SystemExit as exit_:
            if exit_.code:
                refused.append(f"{where}\n  {stderr.getvalue().strip().splitlines()[-1]}")
    assert not refused, "\n".join(refused)


# --- code the pages name exists --------------------------------------------------------------------

def test_every_repository_path_and_python_name_the_pages_give_exists():
    missing = []
    for page in PAGES:
        for code in re.findall(r"`([^`\s]+)`", _prose(page.read_text())):
            if re.fullmatch(r"(renamer_ray|tests|scripts|benchmarks)/[\w./-]+", code):
                if not (ROOT / code.split("::")[0]).exists():
                    missing.append(f"{page.name}: {code}")
            elif re.fullmatch(r"renamer_ray(\.\w+)+", code) and not _resolves(code):
                missing.append(f"{page.name}: {code}")
        for block in _blocks(page, ("python",)):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("renamer_ray"):
                    missing += [f"{page.name}: from {node.module} import {alias.name}" for alias in node.names
                                if not _resolves(f"{node.module}.{alias.name}")]
    assert not missing


def _resolves(dotted: str) -> bool:
    """Whether a dotted name is a module, or a name in one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


# --- architecture.md: the layers drawn are the imports' own ----------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    """Room -> its layer (1 is the top), from the layer table."""
    layers = {}
    for number, rooms in re.findall(r"^\| (\d) \| ([^|]+) \|", ARCHITECTURE.read_text(), re.M):
        layers.update({room: int(number) for room in re.findall(r"`(\w+)`", rooms)})
    return layers


def _arrows() -> dict[tuple[str, str], int]:
    """What the page's own script prints, run from the repository root: (room, imported room) ->
    how many modules import it."""
    script = re.search(r"<<'EOF'\n(.*?)^EOF$", ARCHITECTURE.read_text(), re.M | re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(script, str(ARCHITECTURE), "exec"), {})
    return {(room, imported): int(count) for room, _, imported, count in map(str.split, out.getvalue().splitlines())}


def test_the_layers_architecture_md_draws_are_the_imports_own(monkeypatch):
    monkeypatch.chdir(ROOT)
    layers, arrows = _layers(), _arrows()
    rooms = {path.stem for path in (ROOT / "renamer_ray").iterdir()
             if path.suffix == ".py" and path.stem != "__init__" or (path / "__init__.py").exists()}
    unplaced = sorted(rooms - set(layers))
    imported = {imported for _, imported in arrows}
    assert not [room for room in unplaced if room in imported], "rooms others import must have a layer"
    upward = [f"{room} ({layers[room]}) -> {up} ({layers[up]})" for room, up in arrows
              if room in layers and up in layers and layers[up] < layers[room]]
    assert not upward, "imports that point up"
    graph: dict[str, set[str]] = {}
    for room, imported_room in arrows:
        graph.setdefault(room, set()).add(imported_room)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as circle:
        pytest.fail(f"rooms that import each other in a circle: {circle.args[1]}")


# --- operations.md and manifest.md: the job's moves, the record's keys ----------------------------

def test_the_job_status_moves_operations_md_shows_are_the_job_records_own():
    from renamer_ray.service.jobs import FINISHED, MOVES, Trigger

    rows = re.findall(r"^\s*\| `([A-Z_]+)`: [^|]+\| ([^|]+) \| ([^|]+) \|$", (ROOT / "docs" / "operations.md").read_text(),
                      re.M)
    assert {trigger for trigger, _, _ in rows} == {trigger.name for trigger in Trigger}
    for trigger, sources, targets in rows:
        allowed_from, to = MOVES[Trigger[trigger]]
        assert set(re.findall(r"`(\w+)`", sources)) == set(allowed_from), trigger
        shown = re.findall(r"`(\w+)`", targets)
        assert set(shown) <= set(FINISHED) if to is None else shown == [to], trigger


def test_every_key_of_the_per_file_record_is_in_manifest_md():
    from renamer_ray.records.manifest import FileRecord

    table = (ROOT / "docs" / "manifest.md").read_text().split("## The per-file record")[1].split("\n## ")[0]
    keys = {key for row in re.findall(r"^\| ([^|]+) \|", table, re.M) for key in re.findall(r"`(\w+)`", row)}
    assert keys == set(FileRecord.model_fields)
