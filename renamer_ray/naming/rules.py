"""Turning a model's free text into a strict file stem, written in one of the naming cases.

Every stem is a list of lowercase ASCII words, *rendered* in a case (``CASES``): kebab ``red-circle``,
snake ``red_circle``, camel ``redCircle``, pascal ``RedCircle``, title ``Red Circle``, lower
``red circle``. A rendered stem is *parsed* back into the same words (:func:`split_words`), so the
limits, the blocklist and de-duplication work on words whatever the case. In the joined cases
(camel, pascal) a word can only start where a capital marks it, so a word that starts with a digit
joins the word before it (``["red", "2024"]`` → ``red2024``, one word): what is rendered is always
what parses back.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Sequence
from importlib import resources

from anyascii import anyascii

from renamer_ray.naming.formats import IMAGE_EXTENSIONS

MAX_CHARS = 60
MAX_WORDS = 10
FALLBACK_STEM = "image"

CASES: tuple[str, ...] = ("kebab", "snake", "camel", "pascal", "title", "lower")
SEPARATORS = {"kebab": "-", "snake": "_", "camel": "", "pascal": "", "title": " ", "lower": " "}
CASE_RE = {  # use with fullmatch
    "kebab": re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*"),
    "snake": re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*"),
    "lower": re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*"),
    "title": re.compile(r"[A-Z0-9][a-z0-9]*(?: [A-Z0-9][a-z0-9]*)*"),
    "camel": re.compile(r"[a-z0-9]+(?:[A-Z][a-z0-9]*)*"),
    "pascal": re.compile(r"[A-Z0-9][a-z0-9]*(?:[A-Z][a-z0-9]*)*"),
}

# A trailing image extension the model may have typed ("red-car.jpg"), possibly
# followed by closing quotes, full stops or whitespace.
_EXTENSION_RE = re.compile(
    r"\.(?:" + "|".join(sorted(IMAGE_EXTENSIONS, key=len, reverse=True)) + r")\W*$",
    re.IGNORECASE,
)
# Apostrophes inside words are dropped, not turned into separators: "dog's" -> "dogs".
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2019\u02bc\u2018"), None)
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")
_CAPITAL_RE = re.compile(r"(?=[A-Z])")


def joined(case: str) -> bool:
    """Whether words of ``case`` are written together, told apart only by capitals (camel, pascal)."""
    return SEPARATORS[case] == ""


def _capital(word: str) -> str:
    return word[:1].upper() + word[1:]


def _merge_digit_words(words: Sequence[str], case: str) -> list[str]:
    """Joined cases: a word starting with a digit has no capital to mark its start, so it joins the
    word before it (a first word stays first)."""
    if not joined(case):
        return list(words)
    out: list[str] = []
    for word in words:
        if out and word[:1].isdigit():
            out[-1] += word
        else:
            out.append(word)
    return out


def render(words: Sequence[str], case: str = "kebab") -> str:
    """Lowercase ASCII words written as a stem in ``case``."""
    words = _merge_digit_words([w for w in words if w], case)
    if not words:
        return ""
    if case == "title":
        return " ".join(map(_capital, words))
    if case == "camel":
        return words[0] + "".join(map(_capital, words[1:]))
    if case == "pascal":
        return "".join(map(_capital, words))
    return SEPARATORS[case].join(words)


def split_words(stem: str, case: str = "kebab") -> list[str]:
    """The lowercase words of a stem written in ``case``: ``render(split_words(s, case), case) == s``
    for every valid ``s``."""
    parts = _CAPITAL_RE.split(stem) if joined(case) else stem.split(SEPARATORS[case])
    return [part.lower() for part in parts if part]


def rendered_length(words: Sequence[str], case: str = "kebab") -> int:
    """``len(render(words, case))`` for words already merged (see :func:`render`)."""
    return sum(map(len, words)) + len(SEPARATORS[case]) * max(0, len(words) - 1)


def _check_case(case: str) -> None:
    if case not in SEPARATORS:
        raise ValueError(f"unknown case {case!r}; one of {', '.join(CASES)}")


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


def _transliterable(char: str) -> str:
    """Letters, marks and numbers of any script are transliterated; anything else separates words."""
    return char if unicodedata.category(char)[0] in "LMN" else " "


def ascii_words(text: str) -> list[str]:
    """Lowercase ASCII words of ``text``: letters of every script transliterated by anyascii
    (``é``→``e``, ``ß``→``ss``, ``кот``→``kot``, ``東京``→``dongjing``); symbols, punctuation and
    emoji separate words."""
    text = "".join(map(_transliterable, text.translate(_APOSTROPHES)))
    return [w for w in _NON_WORD_RE.split(anyascii(text).translate(_APOSTROPHES).lower()) if w]


def _fit(words: list[str], max_chars: int, max_words: int, case: str = "kebab") -> list[str]:
    """Keep leading whole words within the limits; hard-cut only a lone first word."""
    words = words[:max_words]
    while len(words) > 1 and rendered_length(words, case) > max_chars:
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
    case: str = "kebab",
) -> str:
    """Turn free text into a stem in ``case`` that satisfies :func:`is_valid_stem`.

    A text that already is a valid stem of ``case`` keeps its words (so the result is idempotent
    in every case); any other text is split into :func:`ascii_words`. Returns
    :data:`FALLBACK_STEM` (cut to ``max_chars``, in ``case``) when nothing usable is left.
    """
    if max_chars < 1 or max_words < 1:
        raise ValueError("max_chars and max_words must be at least 1")
    _check_case(case)
    blocked = _blocked(blocklist)
    text = _EXTENSION_RE.sub("", text)
    words = split_words(text, case) if CASE_RE[case].fullmatch(text) else ascii_words(text)
    words = [w for w in _merge_digit_words([w for w in words if w not in blocked], case) if w not in blocked]
    words = _fit(words, max_chars, max_words, case)
    # A hard-cut word could, with a tiny max_chars, itself be a blocked word.
    if not words or words[0] in blocked:
        words = [FALLBACK_STEM[:max_chars]]
    return render(words, case)


def is_valid_stem(
    stem: str,
    *,
    max_chars: int = MAX_CHARS,
    max_words: int = MAX_WORDS,
    blocklist: Collection[str] | None = None,
    case: str = "kebab",
) -> bool:
    """True iff ``stem`` already obeys every naming rule of ``case`` (e.g. after a person edited it)."""
    _check_case(case)
    if len(stem) > max_chars or not CASE_RE[case].fullmatch(stem):
        return False
    words = split_words(stem, case)
    blocked = _blocked(blocklist)
    return len(words) <= max_words and not any(w in blocked for w in words)


def name_regex(max_words: int, language: str | None) -> str:
    """What an engine's structured output lets the model write (``ENGINE=vllm``, ``ENGINE=openai``
    with ``ENGINE_STRUCTURED``): kebab-case words of ``[a-z0-9]`` (the rules' alphabet), at most
    ``max_words`` of them; with a language, one line of that language's letters (transliterated and
    fitted by the rules after, as with the transformers engine). The character limit is the rules' to
    keep (a regular expression that counts both is too large to compile fast)."""
    if language:
        return r"[^\n]{1,200}"
    return rf"[a-z0-9]+(-[a-z0-9]+){{0,{max_words - 1}}}"
