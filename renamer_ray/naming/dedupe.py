"""Deterministic, case-insensitive de-duplication of file stems, in any naming case.

Names are compared by stem (no extension), case-insensitively. A duplicate gets a numeric suffix
in the stem's case: ``cat`` -> ``cat-001`` (kebab), ``cat_001`` (snake), ``Cat 001`` (title),
``redCircle001`` (camel: the digits join the last word). Every name that can come out for a stem
shares that stem's :func:`group_key`, so a distributed run may group rows by key and de-duplicate
each group on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from renamer_ray.naming.rules import MAX_CHARS, MAX_WORDS, SEPARATORS, joined, render, rendered_length, split_words

GROUP_KEY_CHARS = 20
_DIGITS = "0123456789"


class NoRoom(ValueError):
    """No suffixed name fits the limits (a tiny ``max_chars``, or ``max_words`` 1 with a separator)."""


def key_chars(max_chars: int = MAX_CHARS, case: str = "kebab") -> int:
    """How many leading characters of a stem's key every suffixed name keeps: 20, unless the limit
    leaves less room beside a suffix of up to seven digits (short limits: shorter keys, coarser
    groups, but the suffixes still fit)."""
    return max(1, min(GROUP_KEY_CHARS, max_chars - len(SEPARATORS[case]) - 7))


def with_suffix(stem: str, n: int, max_chars: int = MAX_CHARS, max_words: int = MAX_WORDS, *,
                case: str = "kebab") -> str:
    """``base + separator + f"{n:03d}"`` within ``max_chars`` characters and ``max_words`` words.

    ``base`` is ``stem`` cut at a word boundary; only a first word too long on its own is hard-cut.
    In the joined cases (camel, pascal) the digits join the last word (no word is added), and the
    base keeps at least the stem's first 20 characters (``key_chars``), cutting a word if it must.
    Raises :class:`NoRoom` when the limits leave no room for the suffix.
    """
    if n < 1:
        raise ValueError(f"suffix number must be >= 1, got {n}")
    separator, digits = SEPARATORS[case], f"{n:03d}"
    keep = key_chars(max_chars, case)
    budget = max_chars - len(separator) - len(digits)
    if budget < keep:
        # Below this, hard-cutting could break the group_key guarantee.
        raise NoRoom(f"no room for suffix {separator + digits!r} within {max_chars} chars")
    if separator and max_words < 2:
        raise NoRoom(f"no room for suffix {separator + digits!r} within {max_words} word")
    words = split_words(stem, case)
    full = render(words, case)
    words = words[: max_words - 1] if separator else words[:max_words]
    while len(words) > 1 and rendered_length(words, case) > budget:
        words.pop()
    base = render(words, case)[:budget]
    if joined(case):  # the key is a prefix of the lowercase name: keep it whole
        base = full[: max(len(base), min(len(full), keep))]
    return base + separator + digits


def group_key(stem: str, *, case: str = "kebab", max_chars: int = MAX_CHARS) -> str:
    """Shuffle key. With a separator: the stem's first word, cut to its first 20 characters
    (``key_chars``); ``with_suffix`` always keeps the first word, or at least that much of it.
    Joined cases (whose word boundaries vanish in lowercase): the lowercase stem's first 20
    characters without trailing digits; ``with_suffix`` keeps those characters and adds only
    digits. Either way a stem and every name derived from it share this key, and a key is a
    function of the lowercase name, so names from different keys can never collide.
    """
    keep = key_chars(max_chars, case)
    if joined(case):
        return stem.lower()[:keep].rstrip(_DIGITS)
    return stem.lower().split(SEPARATORS[case], 1)[0][:keep]


def assign_unique(entries: Sequence[tuple[str, str]], pinned: Mapping[str, str] | None = None, *,
                  case: str = "kebab", max_chars: int = MAX_CHARS, max_words: int = MAX_WORDS,
                  reserved: Collection[str] = ()) -> dict[str, str]:
    """Map each ``(source_id, stem)`` to a final stem in ``case``, unique case-insensitively.

    Depends only on the set of entries, not their order. Every stem the model
    gave is claimed: the first entry with it (by ``source_id``) keeps it, and
    each further one gets the smallest free ``with_suffix(stem, n)`` that is
    neither claimed nor already given out. Results are written in ``case``
    (kebab: lowercase). An entry for which no free name fits the limits
    (:class:`NoRoom`: a tiny ``max_chars``) is left out of the result.

    ``pinned`` maps source ids to final stems given by an earlier, interrupted
    attempt: they are kept as they are and never given to anyone else. Pinning
    any subset of a previous result reproduces that result exactly.

    ``reserved`` stems (compared case-insensitively) are given to nobody: the names of files already
    in the output that no entry stands for (an earlier run's outputs whose sources are gone).
    """
    pinned = dict(pinned or {})
    ordered = sorted(entries)
    ids = [source_id for source_id, _ in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("source ids must be unique")
    if len({stem.lower() for stem in pinned.values()}) != len(pinned):
        raise ValueError("pinned names must be unique")

    written = {stem: render(split_words(stem, case), case) for stem in {stem for _, stem in ordered}}
    reserved = {stem.lower() for stem in reserved}
    claimed = {name.lower() for name in written.values()} | {stem.lower() for stem in pinned.values()} | reserved
    taken: set[str] = {stem.lower() for stem in pinned.values()} | reserved
    # Per stem, the suffix its search resumes from: every smaller one was claimed or taken when
    # looked at, and stays so (``taken`` only grows), so n files given one name cost O(n), not O(n²).
    next_suffix: dict[str, int] = {}
    result: dict[str, str] = dict(pinned)
    for source_id, stem in ordered:
        if source_id in pinned:
            continue
        name = written[stem]
        if name.lower() in taken:  # an earlier entry kept this stem, or a pinned one has it
            n = next_suffix.get(stem, 1)
            try:
                while (name := with_suffix(stem, n, max_chars, max_words, case=case)).lower() in claimed \
                        or name.lower() in taken:
                    n += 1
            except NoRoom:  # and for every larger n (longer digits): later entries with this stem too
                next_suffix[stem] = n
                continue
            next_suffix[stem] = n + 1
        taken.add(name.lower())
        result[source_id] = name
    return result
