"""Name templates such as "{date}-{subject}"."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renamer_ray.naming import (
    ALLOWED_FIELDS,
    DEFAULT_TEMPLATE,
    FALLBACK_STEM,
    MAX_CHARS,
    NameTemplate,
    TemplateError,
    is_valid_stem,
)


def render(template: str, **kw: object) -> str:
    values: dict[str, object] = {
        "subject": "red car",
        "date": None,
        "camera": None,
        "original": "IMG_0001",
        "index": 1,
    }
    values.update(kw)
    return NameTemplate.parse(template).render(**values)  # type: ignore[arg-type]


def test_default_template_is_the_sanitised_subject() -> None:
    assert DEFAULT_TEMPLATE == "{subject}"
    assert NameTemplate().fields == {"subject"}
    assert NameTemplate().render(
        subject="Red Car.jpg", date="2024-05-01", camera="Canon", original="IMG_1", index=1
    ) == "red-car"


@pytest.mark.parametrize(
    ("template", "kw", "expected"),
    [
        ("{date}-{subject}", {"date": "2024-05-01"}, "2024-05-01-red-car"),
        ("{date}-{subject}", {"date": None}, "red-car"),
        ("{date}_{subject}", {"date": ""}, "red-car"),
        ("{subject} ({date})", {"date": None}, "red-car"),
        ("{camera}-{subject}", {"camera": "Canon EOS R5"}, "canon-eos-r5-red-car"),
        ("{camera}-{subject}", {"camera": None}, "red-car"),
        ("{original}", {"original": "IMG_1234 (copy)"}, "img-1234-copy"),
        ("{original}-{index}", {"index": 7}, "img-0001-007"),
        ("{index}-{subject}", {"index": 42, "index_width": 5}, "00042-red-car"),
        ("{index}", {"index": 1234}, "1234"),
        ("photo {index}", {"index": 3}, "photo-003"),
        ("{{x}} {subject}", {}, "x-red-car"),
        ("{subject}", {"subject": ""}, FALLBACK_STEM),
    ],
)
def test_render_examples(template: str, kw: dict[str, object], expected: str) -> None:
    assert render(template, **kw) == expected


def test_length_limit_applies_to_the_whole_name() -> None:
    subject = " ".join(["word"] * 9)
    out = render("{date}-{subject}", date="2024-05-01", subject=subject)
    assert is_valid_stem(out)
    assert out.startswith("2024-05-01-word")
    assert len(out.split("-")) == 10  # 3 date words + 7 subject words; whole words dropped


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(
        ["{subject}", "{date}-{camera}-{subject}", "{original}_{index}", "{subject}{original}"]
    ),
    st.text(),
    st.none() | st.text(),
    st.none() | st.text(),
    st.text(),
    st.integers(0, 10**6),
)
def test_render_is_always_a_valid_stem(
    template: str, subject: str, date: str | None, camera: str | None, original: str, index: int
) -> None:
    out = NameTemplate.parse(template).render(
        subject=subject, date=date, camera=camera, original=original, index=index
    )
    assert is_valid_stem(out) and len(out) <= MAX_CHARS


def test_unknown_placeholder_is_named_and_allowed_ones_listed() -> None:
    with pytest.raises(TemplateError) as info:
        NameTemplate.parse("{date}-{subjet}")
    message = str(info.value)
    assert "{subjet}" in message
    assert all("{" + f + "}" in message for f in ALLOWED_FIELDS)


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{}", "{}"),
        ("{0}-{subject}", "{0}"),
        ("{subject:>10}", "{subject}"),
        ("{subject!r}", "{subject}"),
        ("{subject.upper}", "{subject.upper}"),
        ("{subject[0]}", "{subject[0]}"),
        ("{date}-{camera}", "{original}"),  # lacks a field that tells files apart
        ("plain text", "{subject}"),
        ("", "{subject}"),
        ("{subject", "{subject"),
        ("{subject}}", "}"),
    ],
)
def test_invalid_templates_rejected(template: str, named: str) -> None:
    with pytest.raises(TemplateError) as info:
        NameTemplate.parse(template)
    assert isinstance(info.value, ValueError)
    assert named in str(info.value)


def test_fields_and_uses() -> None:
    t = NameTemplate.parse("{date}-{subject}")
    assert t.fields == {"date", "subject"}
    assert t.uses("date") and t.uses("subject")
    assert not t.uses("camera")
    assert not NameTemplate.parse("{index}-{original}").uses("subject")


def test_template_survives_pickling() -> None:
    # Templates are shipped to remote workers.
    t = NameTemplate.parse("{date}-{subject}")
    clone = pickle.loads(pickle.dumps(t))
    assert clone == t
    assert clone.render(
        subject="cat", date="2024-01-02", camera=None, original="x", index=1
    ) == "2024-01-02-cat"
