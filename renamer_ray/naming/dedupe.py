"""Deterministic, case-insensitive de-duplication of file stems.

Names are compared by stem (no extension), case-insensitively. A duplicate gets
a numeric suffix: ``cat`` -> ``cat-001``. Every name that can come out for a
stem shares that stem's :func:`group_key`, so a distributed run may group rows
by key and de-duplicate each group on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from renamer_ray.naming.rules import MAX_CHARS, MAX_WORDS

GROUP_KEY_CHARS = 20


def with_suffix(stem: str, n: int, max_chars: int = MAX_CHARS, max_words: int = MAX_WORDS) -> str:
    """``f"{base}-{n:03d}"`` within ``max_chars`` characters and ``max_words`` words.

    ``base`` is ``stem`` cut at a word boundary; only a first word too long on
    its own is hard-cut.
    """
    if n < 1:
        raise ValueError(f"suffix number must be >= 1, got {n}")
    suffix = f"-{n:03d}"
    budget = max_chars - len(suffix)
    if budget < GROUP_KEY_CHARS or max_words < 2:
        # Below this, hard-cutting could break the group_key guarantee.
        raise ValueError(f"no room for suffix {suffix!r} within {max_chars} chars")
    words = [w for w in stem.lower().split("-") if w][: max_words - 1]
    while len(words) > 1 and len("-".join(words)) > budget:
        words.pop()
    base = "-".join(words)[:budget]
    return base + suffix


def group_key(stem: str) -> str:
    """Shuffle key: the stem's first word, cut to its first 20 characters.

    ``with_suffix`` always keeps the first word, or at least its first 20
    characters, so a stem and every name derived from it share this key, and
    names from different keys can never collide.
    """
    return stem.lower().split("-", 1)[0][:GROUP_KEY_CHARS]


def assign_unique(entries: Sequence[tuple[str, str]], pinned: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map each ``(source_id, stem)`` to a final stem, unique case-insensitively.

    Depends only on the set of entries, not their order. Every stem the model
    gave is claimed: the first entry with it (by ``source_id``) keeps it, and
    each further one gets the smallest free ``with_suffix(stem, n)`` that is
    neither claimed nor already given out. Results are lowercase.

    ``pinned`` maps source ids to final stems given by an earlier, interrupted
    attempt: they are kept as they are and never given to anyone else. Pinning
    any subset of a previous result reproduces that result exactly.
    """
    pinned = {source_id: stem.lower() for source_id, stem in (pinned or {}).items()}
    ordered = sorted(entries)
    ids = [source_id for source_id, _ in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("source ids must be unique")
    if len(set(pinned.values())) != len(pinned):
        raise ValueError("pinned names must be unique")
    claimed = {stem.lower() for _, stem in ordered} | set(pinned.values())
    taken: set[str] = set(pinned.values())
    result: dict[str, str] = dict(pinned)
    for source_id, stem in ordered:
        if source_id in pinned:
            continue
        name = stem.lower()
        if name in taken:  # an earlier entry kept this stem, or a pinned one has it
            n = 1
            while (name := with_suffix(stem, n)) in claimed or name in taken:
                n += 1
        taken.add(name)
        result[source_id] = name
    return result
