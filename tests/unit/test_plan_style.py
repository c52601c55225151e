"""`apply` checks a plan's names against the style each record was named in."""

from __future__ import annotations

from renamer_ray.workflow.apply import _check
from renamer_ray.records.manifest import FileRecord, dump_lines, parse_lines
from renamer_ray.naming import NamingStyle


def record(name: str, style: NamingStyle | None = None, source: str = "/in/a.png") -> FileRecord:
    return FileRecord.model_validate(dict(source=source, name=name, status="ok",
                                          style=None if style is None else style.to_json()))


def test_the_style_travels_in_the_manifest_only_when_it_is_not_the_default():
    title = NamingStyle(case="title", max_chars=40, language="French")
    line = dump_lines([record("Cercle Rouge.png", title), record("cercle-rouge.png")])
    first, second = line.splitlines()
    assert '"style": {"case": "title", "max_chars": 40, "max_words": 10, "language": "French"}' in first
    assert "style" not in second
    assert [NamingStyle(**r.style) if r.style else None for r in parse_lines(line)] == [title, None]


def test_apply_refuses_a_name_not_valid_in_the_plans_style():
    title = NamingStyle(case="title")
    assert _check(record("Red Circle 001.png", title), "PNG", {}) is None
    problem = _check(record("red-circle.png", title), "PNG", {})
    assert "breaks the naming rules (its title style: words of a-z and 0-9" in problem
    assert "at most 60 characters and 10 words" in problem
    assert _check(record("red-circle.png"), "PNG", {}) is None, "no style: the default kebab-case"
    assert "breaks the naming rules (lowercase a-z" in _check(record("Red Circle.png"), "PNG", {})
    snake = NamingStyle(case="snake", max_words=2)
    assert "breaks the naming rules" in _check(record("red_circle_kite.png", snake), "PNG", {})
    taken: dict[str, str] = {}
    assert _check(record("Red Circle.png", title, "/in/a.png"), "PNG", taken) is None
    # Collisions are case-insensitive, by the name without its extension, whatever the styles.
    assert "collides" in _check(record("red circle.jpg", NamingStyle(case="lower"), "/in/c.png"), "JPEG", taken)


def test_a_hand_edited_style_that_is_not_valid_is_a_problem_not_a_traceback():
    bad = FileRecord.model_validate(dict(source="/in/a.png", name="x.png", status="ok",
                                         style={"case": "shouty", "max_chars": 500}))
    problem = _check(bad, "PNG", {})
    assert problem.startswith("/in/a.png: its style") and "case must be one of" in problem
