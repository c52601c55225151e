"""A naming style: the case names are written in, their limits and the language of their words.

The same words render differently per case (``rules.render``): kebab ``red-circle``, snake
``red_circle``, camel ``redCircle``, pascal ``RedCircle``, title ``Red Circle``, lower ``red circle``;
de-duplication suffixes follow the case (``red-circle-001``, ``redCircle001``, ``Red Circle 001``).
``max_chars`` and ``max_words`` bound the rendered stem, suffix included. ``language`` asks the model
for words in that language (``prompts.py``); they are transliterated to ASCII by the rules.

Pure: no I/O. A style travels with each row of a run as JSON (``to_json``/``from_json``), so one
run may carry jobs of several styles.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from renamer_ray.naming import dedupe, rules
from renamer_ray.naming.rules import MAX_CHARS, MAX_WORDS

Case = Literal["kebab", "snake", "camel", "pascal", "title", "lower"]
CHARS_RANGE = (1, 120)
WORDS_RANGE = (1, 20)
MAX_LANGUAGE_CHARS = 40
DEFAULT_LANGUAGES = ("en", "english")  # the model's own language: the same as none

_SHAPES = {
    "kebab": "lowercase a-z, 0-9 and single hyphens",
    "snake": "lowercase a-z, 0-9 and single underscores",
    "lower": "lowercase a-z, 0-9 and single spaces",
    "title": "words of a-z and 0-9 that each start with a capital or a digit, separated by single spaces",
    "camel": "a-z and 0-9 with no separators, each word after the first starting with a capital",
    "pascal": "a-z and 0-9 with no separators, each word starting with a capital",
}


class StyleError(ValueError):
    """A naming option is out of range or unknown; the message says which and what is allowed."""


class NamingStyle(BaseModel):
    """How names are written. Frozen and hashable; the default is today's kebab-case, 60/10."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case: Case = "kebab"
    max_chars: int = Field(MAX_CHARS, ge=CHARS_RANGE[0], le=CHARS_RANGE[1])
    max_words: int = Field(MAX_WORDS, ge=WORDS_RANGE[0], le=WORDS_RANGE[1])
    language: str | None = Field(None, description="names in this language, e.g. French or pt-BR; none: English")

    @field_validator("case", mode="before")
    @classmethod
    def _lowercase_case(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("language", mode="before")
    @classmethod
    def _safe_language(cls, value):
        """A short name or code: letters of any script, digits, spaces and hyphens (it goes into the
        prompt). English, the model's default, is the same as none."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be text")
        text = " ".join(value.split())
        if not text or text.casefold() in DEFAULT_LANGUAGES:
            return None
        if len(text) > MAX_LANGUAGE_CHARS or not text[0].isalpha() or not all(
                c.isalnum() or c in " -" or unicodedata.category(c).startswith("M") for c in text):
            raise ValueError(f"must be a language name or code such as French or pt-BR: letters, digits, spaces "
                             f"and hyphens, at most {MAX_LANGUAGE_CHARS} characters")
        return text

    @classmethod
    def parse(cls, **fields) -> NamingStyle:
        """A style from user input (``None`` = the default of that field); :class:`StyleError` names
        the bad field."""
        try:
            return cls(**{name: value for name, value in fields.items() if value is not None})
        except ValidationError as exc:
            raise StyleError("; ".join(_problem(err) for err in exc.errors())) from None

    def merged(self, **wished) -> NamingStyle:
        """This style with each wished field that is given (not ``None``) over it, checked as
        :meth:`parse` checks user input: flags, form fields and requests over the NAME_* settings."""
        given = {name: value for name, value in wished.items() if value is not None}
        return NamingStyle.parse(**{**dict(self), **given})

    @classmethod
    def from_json(cls, text: str | None) -> NamingStyle:
        """The style of a row (``None``: the default); cached, as every row of a job has the same."""
        return _from_json(text)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_STYLE

    def for_model(self) -> NamingStyle:
        """What the model's call depends on (the case is applied by the rules after it)."""
        return self.model_copy(update={"case": "kebab"})

    # The rules in this style ------------------------------------------------------------------
    def render(self, words: Sequence[str]) -> str:
        return rules.render(words, self.case)

    def words(self, stem: str) -> list[str]:
        return rules.split_words(stem, self.case)

    def sanitize(self, text: str, blocklist: Collection[str] | None = None) -> str:
        return rules.sanitize_stem(text, max_chars=self.max_chars, max_words=self.max_words, blocklist=blocklist,
                                   case=self.case)

    def is_valid(self, stem: str, blocklist: Collection[str] | None = None) -> bool:
        return rules.is_valid_stem(stem, max_chars=self.max_chars, max_words=self.max_words, blocklist=blocklist,
                                   case=self.case)

    def with_suffix(self, stem: str, n: int) -> str:
        return dedupe.with_suffix(stem, n, self.max_chars, self.max_words, case=self.case)

    def group_key(self, stem: str) -> str:
        return dedupe.group_key(stem, case=self.case, max_chars=self.max_chars)

    def assign_unique(self, entries: Sequence[tuple[str, str]], pinned: Mapping[str, str] | None = None,
                      reserved: Collection[str] = ()) -> dict[str, str]:
        return dedupe.assign_unique(entries, pinned, case=self.case, max_chars=self.max_chars,
                                    max_words=self.max_words, reserved=reserved)

    def describe(self) -> str:
        """The rules a name of this style obeys, for a person (``apply``'s refusals)."""
        return (f"{_SHAPES[self.case]}, at most {self.max_chars} characters and {self.max_words} words, "
                "no blocked words")


DEFAULT_STYLE = NamingStyle()


@functools.lru_cache(maxsize=256)
def _from_json(text: str | None) -> NamingStyle:
    return DEFAULT_STYLE if text is None else NamingStyle.model_validate_json(text)


def _problem(err: dict) -> str:
    field = ".".join(str(part) for part in err["loc"]) or "style"
    message = err["msg"].removeprefix("Value error, ")
    if field == "case" and err["type"] == "literal_error":
        message = f"must be one of {', '.join(rules.CASES)}"
    elif field in ("max_chars", "max_words"):
        low, high = CHARS_RANGE if field == "max_chars" else WORDS_RANGE
        message = f"must be a whole number from {low} to {high}"
    return f"{field} {message[:1].lower() + message[1:]} (got {err.get('input')!r})"
