"""Naming styles: every case, limit and language follows the same rules, suffixes and checks."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renamer_ray.naming import prompts
from renamer_ray.naming import CASES, DEFAULT_STYLE, NamingStyle, NoRoom, StyleError, load_blocklist
from renamer_ray.naming.rules import CASE_RE

FAST = settings(max_examples=int(__import__("os").environ.get("STRESS", 120)), deadline=None)

styles = st.builds(NamingStyle, case=st.sampled_from(CASES), max_chars=st.integers(1, 120),
                   max_words=st.integers(1, 20))
# Limits with room for a de-duplication suffix (below them a duplicate may get no name: see NoRoom).
roomy_styles = st.builds(NamingStyle, case=st.sampled_from(CASES), max_chars=st.integers(24, 120),
                         max_words=st.integers(2, 20))
ascii_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
# Few words, so that collisions are common; "redcircle" collides with camel "redCircle", "red2"
# with "red" + suffix in the joined cases, long words stress the group keys.
VOCAB = ["red", "circle", "redcircle", "a", "b", "ab", "2", "001", "red2", "z" * 25, "p" * 20, "p" * 21]
vocab_words = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4)
texts = st.one_of(st.text(), st.lists(ascii_word, max_size=25).map(" ".join),
                  st.text(alphabet="aBc1 _-.Дж東é", max_size=40))


def assert_valid(stem: str, style: NamingStyle) -> None:
    assert CASE_RE[style.case].fullmatch(stem), (stem, style)
    assert 0 < len(stem) <= style.max_chars, (stem, style)
    assert len(style.words(stem)) <= style.max_words, (stem, style)
    assert style.is_valid(stem), (stem, style)
    assert stem == stem.strip() and "  " not in stem and "/" not in stem and "\\" not in stem


@FAST
@given(texts, styles)
def test_output_is_always_valid_in_its_style(text: str, style: NamingStyle) -> None:
    assert_valid(style.sanitize(text), style)


@FAST
@given(texts, styles)
def test_sanitize_is_idempotent_in_every_style(text: str, style: NamingStyle) -> None:
    once = style.sanitize(text)
    assert style.sanitize(once) == once


@FAST
@given(st.lists(ascii_word, min_size=1, max_size=12), styles)
def test_valid_stems_are_left_unchanged_and_round_trip(words: list[str], style: NamingStyle) -> None:
    stem = style.render(words)
    assert style.render(style.words(stem)) == stem, "render/parse round trip"
    if style.is_valid(stem):
        assert style.sanitize(stem) == stem
    else:  # too long, too many words or a blocked word: sanitising must change it
        assert style.sanitize(stem) != stem


@FAST
@given(st.lists(ascii_word, min_size=1, max_size=8), st.sampled_from(CASES))
def test_the_same_words_in_every_case(words: list[str], case: str) -> None:
    """A style only renders: within limits that cut nothing, the kebab name's words are the words
    of every other case's name (in the joined cases a word starting with a digit joins the one
    before it)."""
    blocked = load_blocklist()
    words = [w for w in words if w not in blocked] or ["image"]
    kebab = NamingStyle(max_chars=120, max_words=20).sanitize(" ".join(words))
    other = NamingStyle(case=case, max_chars=120, max_words=20).sanitize(" ".join(words))
    assert "".join(NamingStyle(case=case).words(other)) == kebab.replace("-", "")
    if case not in ("camel", "pascal"):
        assert NamingStyle(case=case).words(other) == kebab.split("-")


@FAST
@given(vocab_words, st.integers(1, 1200), roomy_styles)
def test_suffixes_are_valid_and_keep_the_group_key(words: list[str], n: int, style: NamingStyle) -> None:
    stem = style.sanitize(" ".join(words))
    out = style.with_suffix(stem, n)
    assert_valid(out, style)
    assert out.endswith(f"{n:03d}")
    assert style.group_key(out) == style.group_key(stem)


@FAST
@given(st.lists(st.tuples(st.text(alphabet="abcdefgh", min_size=1, max_size=4), vocab_words), max_size=25,
                unique_by=lambda e: e[0]), roomy_styles, st.data())
def test_assign_unique_in_every_style(entries, style: NamingStyle, data: st.DataObject) -> None:
    entries = [(sid, style.sanitize(" ".join(words))) for sid, words in entries]
    out = style.assign_unique(entries)
    assert set(out) == {sid for sid, _ in entries}
    names = list(out.values())
    assert len({n.lower() for n in names}) == len(names), "unique case-insensitively"
    for name in names:
        assert_valid(name, style)
    assert style.assign_unique(data.draw(st.permutations(entries))) == out, "order does not matter"
    # Groups by key are independent: de-duplicating each alone gives the same names.
    groups: dict[str, list] = defaultdict(list)
    for sid, stem in entries:
        groups[style.group_key(stem)].append((sid, stem))
    merged: dict[str, str] = {}
    for group in groups.values():
        merged.update(style.assign_unique(group))
    assert merged == out
    # Resuming: pinning part of a result reproduces it.
    pinned = {sid: out[sid] for sid in data.draw(st.sets(st.sampled_from(sorted(out)))) } if out else {}
    assert style.assign_unique(entries, pinned=pinned) == out


@pytest.mark.parametrize(("case", "name", "first", "second", "third"), [
    ("kebab", "red-circle", "red-circle-001", "red-circle-002", "red-circle-kite"),
    ("snake", "red_circle", "red_circle_001", "red_circle_002", "red_circle_kite"),
    ("camel", "redCircle", "redCircle001", "redCircle002", "redCircleKite"),
    ("pascal", "RedCircle", "RedCircle001", "RedCircle002", "RedCircleKite"),
    ("title", "Red Circle", "Red Circle 001", "Red Circle 002", "Red Circle Kite"),
    ("lower", "red circle", "red circle 001", "red circle 002", "red circle kite"),
])
def test_examples_and_suffixes(case, name, first, second, third) -> None:
    style = NamingStyle(case=case)
    assert style.sanitize("Red circle!") == name
    assert style.sanitize("red_circle.jpg") == name
    out = style.assign_unique([("a", name), ("b", name), ("c", name), ("d", third)])
    assert out == {"a": name, "b": first, "c": second, "d": third}
    assert style.is_valid(first) and not style.is_valid(first + " ")


def test_joined_cases_collide_case_insensitively() -> None:
    """camel "redCircle" and "redcircle" differ only in case: on a case-insensitive disk they are
    one file, so they de-duplicate, and they share a group key."""
    style = NamingStyle(case="camel")
    assert style.group_key("redCircle") == style.group_key("redcircle") == style.group_key("redCircle001")
    out = style.assign_unique([("a", "redCircle"), ("b", "redcircle"), ("c", "red2")])
    assert out == {"a": "redCircle", "b": "redcircle001", "c": "red2"}
    assert NamingStyle(case="pascal").sanitize("2024 05 car") == "202405Car"  # digits join the word before


@pytest.mark.parametrize(("case", "stem", "valid"), [
    ("snake", "red_circle", True), ("snake", "red-circle", False), ("snake", "red__circle", False),
    ("camel", "redCircle", True), ("camel", "RedCircle", False), ("camel", "red_circle", False),
    ("pascal", "RedCircle", True), ("pascal", "redCircle", False), ("pascal", "2024Car", True),
    ("title", "Red Circle", True), ("title", "Red circle", False), ("title", "Red  Circle", False),
    ("title", " Red Circle", False), ("title", "Red Circle ", False), ("title", "Red/Circle", False),
    ("lower", "red circle", True), ("lower", "Red circle", False), ("lower", "red circle\n", False),
    ("title", "Big Ass Truck", False), ("camel", "bigAssTruck", False), ("camel", "classAssess", True),
    ("title", "", False), ("kebab", "red-circle", True),
])
def test_is_valid_per_case(case: str, stem: str, valid: bool) -> None:
    assert NamingStyle(case=case).is_valid(stem) is valid


def test_limits_apply_to_the_rendered_name_with_its_suffix() -> None:
    style = NamingStyle(case="title", max_chars=12, max_words=3)
    assert style.sanitize("red circle over the sea") == "Red Circle"  # "Red Circle Over" is 15
    assert style.with_suffix("Red Circle", 1) == "Red 001"       # a word makes room for the suffix
    camel = NamingStyle(case="camel", max_chars=14, max_words=2)
    assert camel.sanitize("red circle kite") == "redCircle"      # two words
    assert camel.with_suffix("redCircle", 1) == "redCircle001"   # the digits add no word
    assert NamingStyle(max_chars=3).sanitize("?!") == "ima", "the fallback fits the limit too"


def test_tiny_limits_leave_a_duplicate_without_a_name() -> None:
    style = NamingStyle(max_chars=4)
    with pytest.raises(NoRoom):
        style.with_suffix("cat", 1)
    assert style.assign_unique([("a", "cat"), ("b", "cat")]) == {"a": "cat"}
    with pytest.raises(NoRoom):
        NamingStyle(max_words=1).with_suffix("cat", 1)
    assert NamingStyle(case="camel", max_words=1).with_suffix("cat", 1) == "cat001"


@pytest.mark.parametrize(("answer", "kebab", "title"), [
    ("赤い円", "chiiyuan", "Chiiyuan"),                       # Japanese (anyascii reads kanji in Mandarin)
    ("красный-круг", "krasnyy-krug", "Krasnyy Krug"),          # Russian
    ("κόκκινος κύκλος", "kokkinos-kyklos", "Kokkinos Kyklos"),  # Greek
    ("cercle-rouge-été", "cercle-rouge-ete", "Cercle Rouge Ete"),  # French
    ("Straße\nDas ist ein Bild", "strasse-das-ist-ein-bild", "Strasse Das Ist Ein Bild"),
])
def test_answers_in_other_languages_are_transliterated(answer: str, kebab: str, title: str) -> None:
    assert NamingStyle(language="ja").sanitize(answer) == kebab
    assert NamingStyle(case="title", language="ja").sanitize(answer) == title


def test_style_validation_and_json() -> None:
    assert NamingStyle.parse(case="Snake", max_chars="40").case == "snake"
    for bad, words in [(dict(case="shouty"), "one of kebab"), (dict(max_chars=0), "from 1 to 120"),
                       (dict(max_chars=121), "from 1 to 120"), (dict(max_words=21), "from 1 to 20"),
                       (dict(max_words="x"), "max_words"), (dict(language="fr; rm -rf /"), "language"),
                       (dict(language="x" * 41), "at most 40"), (dict(language="<b>"), "language")]:
        with pytest.raises(StyleError, match=words):
            NamingStyle.parse(**bad)
    assert NamingStyle.parse(language="  Brazilian   Portuguese ").language == "Brazilian Portuguese"
    assert NamingStyle.parse(language="日本語").language == "日本語"
    assert NamingStyle.parse(language="English").language is None and NamingStyle.parse(language="en").is_default
    style = NamingStyle(case="pascal", max_chars=30, max_words=4, language="pt-BR")
    assert NamingStyle.from_json(style.to_json()) == style
    assert NamingStyle.from_json(None) is DEFAULT_STYLE and DEFAULT_STYLE.is_default
    assert style.for_model() == NamingStyle(max_chars=30, max_words=4, language="pt-BR")


def test_the_default_prompt_is_unchanged_and_a_language_is_asked_for() -> None:
    default = prompts.chat_messages(None)
    assert default[0]["content"][0]["text"] == (
        "You are an image filename generator. Return ONLY a safe filename in kebab-case. "
        "ASCII only, <=10 words, <=60 characters. No punctuation except '-'.")
    assert default[1]["content"][1]["text"] == "Name this image after its primary subject."
    assert prompts.chat_messages(None, max_chars=60, max_words=10, language=None) == default
    french = prompts.chat_messages("the main subject", language="French", max_words=4)
    system, user = french[0]["content"][0]["text"], french[1]["content"][1]["text"]
    assert "in French" in system and "ASCII" not in system and "<=4 words" in system
    assert user == "the main subject\nWrite the name in French."
    shorter = prompts.chat_messages(None, max_chars=30, max_words=3)[0]["content"][0]["text"]
    assert "<=3 words, <=30 characters" in shorter


def test_wishes_over_the_settings_style_keep_what_is_not_given_and_are_checked():
    settings = NamingStyle.parse(case="snake", max_chars=40, max_words=6)
    merged = settings.merged(case=None, max_chars=20, max_words=None, language=None)
    assert (merged.case, merged.max_chars, merged.max_words) == ("snake", 20, 6), "None leaves the setting"
    with pytest.raises(StyleError):
        settings.merged(case="shouting")
    with pytest.raises(StyleError):
        settings.merged(max_chars=0)
