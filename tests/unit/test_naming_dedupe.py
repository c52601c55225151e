"""Deterministic, case-insensitive de-duplication of stems."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renamer_ray.naming import (
    MAX_CHARS,
    assign_unique,
    group_key,
    is_valid_stem,
    with_suffix,
)

FAST = settings(max_examples=200, deadline=None)

# A small vocabulary so collisions are common: suffix-like words the model may
# type itself, and long words sharing a 20-char prefix to stress group_key.
VOCAB = ["cat", "dog", "red", "a", "001", "002", "003", "1000", "z" * 30]
VOCAB += ["p" * 20, "p" * 20 + "q", "p" * 25, "p" * 56, "p" * 57, "p" * 60]
vocab_stems = st.one_of(
    st.lists(st.sampled_from(VOCAB), min_size=1, max_size=2),  # short: frequent collisions
    st.lists(st.sampled_from(VOCAB), min_size=1, max_size=10),
).map("-".join).filter(is_valid_stem)
any_stems = st.from_regex(r"[a-z0-9]{1,60}(-[a-z0-9]{1,12}){0,9}", fullmatch=True).filter(
    is_valid_stem
)
stems = st.one_of(vocab_stems, any_stems)
entries_st = st.lists(
    st.tuples(st.text(alphabet="abcdefgh", min_size=1, max_size=4), vocab_stems),
    max_size=30,
    unique_by=lambda e: e[0],
)
suffix_numbers = st.one_of(st.integers(1, 20), st.integers(1, 10**7))


def derived(stem: str, n: int) -> str:
    """A name assign_unique can give for ``stem``: itself (n == 0) or a suffixed form."""
    return stem if n == 0 else with_suffix(stem, n)


def test_model_suffix_is_never_collided_with() -> None:
    assert assign_unique([("a", "cat"), ("b", "cat"), ("c", "cat-001")]) == {
        "a": "cat",
        "b": "cat-002",
        "c": "cat-001",
    }


def test_duplicates_get_increasing_suffixes_by_source_id() -> None:
    out = assign_unique([("d", "cat"), ("b", "cat"), ("a", "cat"), ("c", "cat"), ("e", "dog")])
    assert out == {"a": "cat", "b": "cat-001", "c": "cat-002", "d": "cat-003", "e": "dog"}


def test_case_insensitive() -> None:
    assert assign_unique([("a", "Cat"), ("b", "cat")]) == {"a": "cat", "b": "cat-001"}


def test_duplicate_source_ids_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        assign_unique([("a", "cat"), ("a", "dog")])


@FAST
@given(entries_st, st.data())
def test_assign_unique_properties(entries: list[tuple[str, str]], data: st.DataObject) -> None:
    out = assign_unique(entries)
    assert set(out) == {sid for sid, _ in entries}
    names = list(out.values())
    assert len({n.lower() for n in names}) == len(names)
    assert all(is_valid_stem(n) and len(n) <= MAX_CHARS for n in names)
    # Order of entries does not matter.
    assert assign_unique(data.draw(st.permutations(entries))) == out
    # The first entry (by source id) with a stem keeps it; a unique stem is unchanged.
    first: dict[str, str] = {}
    for sid, stem in sorted(entries):
        first.setdefault(stem, sid)
    for stem, sid in first.items():
        assert out[sid] == stem
    # A renamed entry never takes a stem that some other entry was given by the model.
    claimed = {stem for _, stem in entries}
    for sid, stem in entries:
        assert out[sid] == stem or out[sid] not in claimed


@FAST
@given(entries_st, st.data())
def test_pinning_part_of_a_result_reproduces_it(entries: list[tuple[str, str]], data: st.DataObject) -> None:
    """A resumed run pins the names an interrupted attempt already gave: the rest come out the same."""
    full = assign_unique(entries)
    done = data.draw(st.sets(st.sampled_from(sorted(full))) if full else st.just(set()))
    pinned = {sid: full[sid] for sid in done}
    assert assign_unique(entries, pinned=pinned) == full
    # A resumed run does not ask the model again: a pinned entry's stem is its pinned name.
    assert assign_unique([(sid, pinned.get(sid, stem)) for sid, stem in entries], pinned=pinned) == full


def test_pinned_names_are_kept_even_when_the_model_now_says_otherwise() -> None:
    # The earlier attempt named "b" cat (say a GPU gave a different answer then): it stays cat,
    # and the new "cat" from "a" has to take a suffix instead.
    out = assign_unique([("a", "cat"), ("b", "dog"), ("c", "dog")], pinned={"b": "cat"})
    assert out == {"a": "cat-001", "b": "cat", "c": "dog"}


@FAST
@given(entries_st)
def test_per_group_dedupe_equals_global(entries: list[tuple[str, str]]) -> None:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for sid, stem in entries:
        groups[group_key(stem)].append((sid, stem))
    merged: dict[str, str] = {}
    for group in groups.values():
        merged.update(assign_unique(group))
    assert merged == assign_unique(entries)


@FAST
@given(stems, suffix_numbers)
def test_with_suffix_is_valid_and_keeps_whole_words(stem: str, n: int) -> None:
    out = with_suffix(stem, n)
    assert is_valid_stem(out)
    base, suffix = out.rsplit("-", 1)
    assert suffix == f"{n:03d}"
    words, base_words = stem.split("-"), base.split("-")
    if len(words[0]) > MAX_CHARS - len(suffix) - 1:
        assert base == words[0][: MAX_CHARS - len(suffix) - 1]
    else:
        assert base_words == words[: len(base_words)]


def test_with_suffix_examples() -> None:
    assert with_suffix("cat", 1) == "cat-001"
    assert with_suffix("cat", 1234) == "cat-1234"
    ten = "-".join(["word"] * 10)
    assert with_suffix(ten, 2) == "-".join(["word"] * 9) + "-002"
    assert with_suffix("x" * 60, 7) == "x" * 56 + "-007"
    assert with_suffix("a-" + "b" * 58, 1) == "a-001"
    with pytest.raises(ValueError):
        with_suffix("cat", 0)


@FAST
@given(stems, suffix_numbers)
def test_suffixed_names_share_the_stems_group_key(stem: str, n: int) -> None:
    assert group_key(with_suffix(stem, n)) == group_key(stem)


@FAST
@given(st.lists(vocab_stems, min_size=2, max_size=20))
def test_different_groups_never_yield_the_same_name(pool: list[str]) -> None:
    names_by_key: dict[str, set[str]] = defaultdict(set)
    for stem in pool:
        names_by_key[group_key(stem)] |= {derived(stem, n) for n in (0, 1, 2, 3, 999, 1000)}
    seen: set[str] = set()
    for names in names_by_key.values():
        assert not names & seen
        seen |= names


@FAST
@given(stems, suffix_numbers)
def test_a_stem_equal_to_a_derived_name_is_in_the_same_group(stem: str, n: int) -> None:
    # E.g. the model itself answered "cat-001" for another image.
    colliding_stem = with_suffix(stem, n)
    assert group_key(colliding_stem) == group_key(stem)
    out = assign_unique([("a", stem), ("b", stem), ("c", colliding_stem)])
    assert len(set(out.values())) == 3


@FAST
@given(entries_st, st.lists(st.sampled_from(["cat", "cat-001", "dog", "Cat-002", "bird"]), max_size=4))
def test_reserved_names_are_given_to_nobody(entries: list[tuple[str, str]], reserved: list[str]) -> None:
    """Names of files already in the output that no entry stands for (an earlier run's outputs whose
    sources are gone) stay theirs; everyone else is still unique."""
    out = assign_unique(entries, reserved=reserved)
    assert set(out) == {sid for sid, _ in entries}
    names = [name.lower() for name in out.values()]
    assert len(set(names)) == len(names) and not set(names) & {name.lower() for name in reserved}


def test_a_reserved_name_moves_a_new_file_to_the_next_free_suffix() -> None:
    assert assign_unique([("a", "cat")], reserved=["cat", "cat-001"]) == {"a": "cat-002"}
