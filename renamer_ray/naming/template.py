"""Optional name templates such as ``"{date}-{subject}"``."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from renamer_ray.naming.style import DEFAULT_STYLE, NamingStyle

ALLOWED_FIELDS: tuple[str, ...] = ("subject", "date", "camera", "original", "index")
# A template needs one of these, else it could give every file the same name.
DISTINGUISHING_FIELDS: tuple[str, ...] = ("subject", "original", "index")
DEFAULT_TEMPLATE = "{subject}"


class TemplateError(ValueError):
    """The template text is not a valid name template."""


def _allowed() -> str:
    return ", ".join("{" + f + "}" for f in ALLOWED_FIELDS)


def _parse_parts(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``text`` into (literal, field-or-None) pairs, rejecting anything but plain fields."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:  # unbalanced braces
        raise TemplateError(f"malformed template {text!r}: {exc}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None))
            continue
        if name not in ALLOWED_FIELDS:
            shown = "{" + name + "}" if name else "positional field {}"
            raise TemplateError(f"unknown placeholder {shown} in {text!r}; allowed: {_allowed()}")
        if spec or conversion:
            raise TemplateError(
                f"placeholder {{{name}}} in {text!r} must not have a format spec or "
                f"conversion; allowed: {_allowed()}"
            )
        parts.append((literal, name))
    if not any(name in DISTINGUISHING_FIELDS for _, name in parts):
        needed = ", ".join("{" + f + "}" for f in DISTINGUISHING_FIELDS)
        raise TemplateError(f"template {text!r} must contain at least one of {needed}")
    return tuple(parts)


@dataclass(frozen=True)
class NameTemplate:
    """A validated name template; construct with :meth:`parse`."""

    text: str = DEFAULT_TEMPLATE
    _parts: tuple[tuple[str, str | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parts", _parse_parts(self.text))

    @classmethod
    def parse(cls, text: str) -> NameTemplate:
        """Validate ``text``; raises :class:`TemplateError` naming the bad placeholder."""
        return cls(text)

    @property
    def fields(self) -> frozenset[str]:
        """Placeholders the template uses (e.g. to decide whether EXIF is needed)."""
        return frozenset(name for _, name in self._parts if name is not None)

    def uses(self, field_name: str) -> bool:
        return field_name in self.fields

    def render(
        self,
        *,
        subject: str,
        date: str | None,
        camera: str | None,
        original: str,
        index: int,
        index_width: int = 3,
        style: NamingStyle = DEFAULT_STYLE,
    ) -> str:
        """Fill the placeholders and sanitise the whole result into a valid stem of ``style``.

        Missing values become empty and collapse away; the length limit applies
        to the whole name, cutting whole words from the end.
        """
        values = {
            "subject": subject or "",
            "date": date or "",
            "camera": camera or "",
            "original": original or "",
            "index": f"{index:0{index_width}d}",
        }
        text = "".join(lit + (values[name] if name else "") for lit, name in self._parts)
        return style.sanitize(text)
