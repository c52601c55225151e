"""Turning a model's free text into a strict kebab-case file stem."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection
from importlib import resources

from renamer_ray.naming.formats import IMAGE_EXTENSIONS

MAX_CHARS = 60
MAX_WORDS = 10
FALLBACK_STEM = "image"

STEM_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # use with fullmatch

# A trailing image extension the model may have typed ("red-car.jpg"), possibly
# followed by closing quotes, full stops or whitespace.
_EXTENSION_RE = re.compile(
    r"\.(?:" + "|".join(sorted(IMAGE_EXTENSIONS, key=len, reverse=True)) + r")\W*$",
    re.IGNORECASE,
)
# Apostrophes inside words are dropped, not turned into separators: "dog's" -> "dogs".
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2019\u02bc\u2018"), None)
# Letters that NFKD does not decompose into ASCII. Applied after casefold(),
# which already maps "ß" to "ss".
_TRANSLITERATE = str.maketrans(
    {"æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i",
     "ħ": "h"}
)
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")


@functools.cache
def load_blocklist() -> frozenset[str]:
    """Words never allowed in a name, from the packaged ``data/blocklist.txt``."""
    text = resources.files("renamer_ray").joinpath("data/blocklist.txt").read_text("utf-8")
    words = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w)


def _blocked(blocklist: Collection[str] | None) -> Collection[str]:
    if blocklist is None:
        return load_blocklist()
    return {w.lower() for w in blocklist}


def _ascii_words(text: str) -> list[str]:
    """Lowercase ASCII words of ``text``, transliterating what can be."""
    text = text.translate(_APOSTROPHES).casefold().translate(_TRANSLITERATE)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    # NFKD can yield capitals (e.g. from letterlike symbols), hence lower() again.
    return [w for w in _NON_WORD_RE.split(text.lower()) if w]


def _fit(words: list[str], max_chars: int, max_words: int) -> list[str]:
    """Keep leading whole words within the limits; hard-cut only a lone first word."""
    words = words[:max_words]
    while len(words) > 1 and len("-".join(words)) > max_chars:
        words.pop()
    if words and len(words[0]) > max_chars:
        words = [words[0][:max_chars]]
    return words


def sanitize_stem(
    text: str,
    *,
    max_chars: int = MAX_CHARS,
    max_words: int = MAX_WORDS,
    blocklist: Collection[str] | None = None,
) -> str:
    """Turn free text into a kebab-case stem that satisfies :func:`is_valid_stem`.

    Returns :data:`FALLBACK_STEM` when nothing usable is left.
    """
    if max_chars < 1 or max_words < 1:
        raise ValueError("max_chars and max_words must be at least 1")
    blocked = _blocked(blocklist)
    words = [w for w in _ascii_words(_EXTENSION_RE.sub("", text)) if w not in blocked]
    words = _fit(words, max_chars, max_words)
    # A hard-cut word could, with a tiny max_chars, itself be a blocked word.
    if not words or words[0] in blocked:
        return FALLBACK_STEM
    return "-".join(words)


def is_valid_stem(
    stem: str,
    *,
    max_chars: int = MAX_CHARS,
    max_words: int = MAX_WORDS,
    blocklist: Collection[str] | None = None,
) -> bool:
    """True iff ``stem`` already obeys every naming rule (e.g. after a person edited it)."""
    if len(stem) > max_chars or not STEM_RE.fullmatch(stem):
        return False
    words = stem.split("-")
    blocked = _blocked(blocklist)
    return len(words) <= max_words and not any(w in blocked for w in words)
