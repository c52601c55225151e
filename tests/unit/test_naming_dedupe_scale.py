"""De-duplication at scale: n files given one name cost O(n), with the same names as the plain search.

``smallest_free`` is the search ``assign_unique`` made before it remembered each stem's next
suffix (every entry searched from 1 up, O(n²) for n files with one name): the reference here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from renamer_ray.naming import CASES, NamingStyle, NoRoom, assign_unique, with_suffix
from renamer_ray.naming.rules import render, split_words

FAST = settings(max_examples=300, deadline=None)
VOCAB = ["cat", "dog", "red", "001", "002", "1000", "p" * 20, "p" * 25]


def smallest_free(entries, pinned=None, *, case="kebab", max_chars=60, max_words=10, reserved=()):
    """Each entry, by source id, keeps its stem or gets the smallest free suffix, searched from 1."""
    pinned = dict(pinned or {})
    ordered = sorted(entries)
    reserved = {stem.lower() for stem in reserved}
    claimed = {render(split_words(stem, case), case).lower() for _, stem in ordered}
    claimed |= {stem.lower() for stem in pinned.values()} | reserved
    taken = {stem.lower() for stem in pinned.values()} | reserved
    result = dict(pinned)
    for source_id, stem in ordered:
        if source_id in pinned:
            continue
        name = render(split_words(stem, case), case)
        if name.lower() in taken:
            n = 1
            try:
                while (name := with_suffix(stem, n, max_chars, max_words, case=case)).lower() in claimed \
                        or name.lower() in taken:
                    n += 1
            except NoRoom:
                continue
        taken.add(name.lower())
        result[source_id] = name
    return result


styles = st.builds(NamingStyle, case=st.sampled_from(CASES), max_chars=st.integers(1, 40),
                   max_words=st.integers(1, 4))


@st.composite
def crowded_entries(draw, style: NamingStyle) -> list[tuple[str, str]]:
    """Up to 60 entries over a few stems (rendered in the style, or another case), so most collide,
    some stems being another's suffixed names (``cat-001``)."""
    pool = draw(st.lists(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3), min_size=1, max_size=4))
    stems = [render(words, draw(st.sampled_from([style.case, *CASES]))) for words in pool]
    stems += [with_suffix(stems[0], n, 60, 10, case=style.case) for n in draw(st.sets(st.integers(1, 4), max_size=2))]
    count = draw(st.integers(0, 60))
    return [(f"s{i:03d}", draw(st.sampled_from(stems))) for i in range(count)]


@FAST
@given(styles, st.data())
def test_same_names_as_the_search_from_one(style: NamingStyle, data: st.DataObject) -> None:
    entries = data.draw(crowded_entries(style))
    limits = dict(case=style.case, max_chars=style.max_chars, max_words=style.max_words)
    expected = smallest_free(entries, **limits)
    assert assign_unique(entries, **limits) == expected
    # With part of that result pinned (a resumed run) and names reserved (files already in DST).
    pinned = {sid: expected[sid] for sid in data.draw(st.sets(st.sampled_from(sorted(expected)))) } if expected else {}
    reserved = data.draw(st.lists(st.sampled_from([stem for _, stem in entries] or ["cat"]), max_size=3))
    reserved = [name for name in reserved if name.lower() not in {p.lower() for p in pinned.values()}]
    assert assign_unique(entries, pinned, reserved=reserved, **limits) == \
        smallest_free(entries, pinned, reserved=reserved, **limits)


def test_a_hundred_thousand_files_given_one_name() -> None:
    """The fixed answer of a folder of 10⁵ images: one keeps the name, the others count up from 001
    (by source id), even past the names other files were given by the model themselves."""
    entries = [(f"img-{i:06d}", "cat") for i in range(100_000)] + [("zz", "cat-002")]
    out = assign_unique(entries)
    assert out["img-000000"] == "cat"
    assert out["img-000001"] == "cat-001"
    assert out["img-000002"] == "cat-003"  # cat-002 is the model's name for "zz"
    assert out["img-099999"] == "cat-100000"
    assert out["zz"] == "cat-002"
    assert len({name.lower() for name in out.values()}) == len(entries)
