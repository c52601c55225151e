"""What a user asked `submit` for: the options, the one error it says, and the form every job carries."""

from __future__ import annotations

from dataclasses import dataclass

from renamer_ray.naming import NameTemplate, NamingStyle, StyleError, TemplateError

DEFAULT_API = "http://127.0.0.1:8000"
KEY_VARIABLE = "RENAMER_RAY_API_KEY"


class SubmitError(Exception):
    """An error a user can act on, said in one line (exit status 2)."""


@dataclass
class Options:
    directory: str
    api: str = DEFAULT_API
    key: str | None = None
    wait: bool = False
    out: str | None = None
    max_files: int | None = None
    prompt: str | None = None
    template: str | None = None
    case: str | None = None           # the naming style's flags; None: its NAME_* setting
    max_chars: int | None = None
    max_words: int | None = None
    language: str | None = None


def naming(options: Options, settings) -> tuple[str, NamingStyle]:
    """The template and the style, each flag over its NAME_* setting as in `rename`; said in one
    line before anything is sent."""
    template = options.template or settings.name_template
    try:
        NameTemplate.parse(template)
    except TemplateError as exc:
        raise SubmitError(f"invalid template: {exc}") from None
    try:
        style = settings.naming_style.merged(case=options.case, max_chars=options.max_chars,
                                             max_words=options.max_words, language=options.language)
    except StyleError as exc:
        raise SubmitError(f"invalid naming style: {exc}") from None
    return template, style


def job_fields(options: Options, template: str, style: NamingStyle) -> dict[str, str]:
    """The form of every job: the template and the whole style, so that the names (and the suffixes
    this client adds) follow this machine's settings and flags, as `rename` does; strict, so that a
    file the service cannot read is refused (415) and this client sets it apart to fail alone with
    its reason, instead of the service skipping it in a job whose results this client counts."""
    fields = {"template": template, "case": style.case, "max_chars": str(style.max_chars),
              "max_words": str(style.max_words), "language": style.language or "en", "strict": "true"}
    if options.prompt:
        fields["user_prompt"] = options.prompt
    return fields
