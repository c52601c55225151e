"""The chat prompt the namer sends with each image (pure: no I/O, no model imports)."""

from __future__ import annotations

_SYSTEM = (
    "You are an image filename generator. Return ONLY a safe filename in kebab-case. "
    "ASCII only, <={max_words} words, <={max_chars} characters. No punctuation except '-'."
)
# The default prompt, byte for byte what the toy checkpoint was trained on.
SYSTEM_PROMPT = _SYSTEM.format(max_words=10, max_chars=60)
# With a language the model writes that language's own letters (the rules transliterate them after).
_SYSTEM_IN_LANGUAGE = (
    "You are an image filename generator. Return ONLY a short filename in {language}: "
    "<={max_words} words in {language}, joined by '-'. No other text, no punctuation except '-'."
)
DEFAULT_USER_PROMPT = "Name this image after its primary subject."


def system_prompt(*, language: str | None = None, max_chars: int = 60, max_words: int = 10) -> str:
    """The rules of the answer: kebab-case ASCII within the limits, or words of ``language``
    (whose length the rules fit after transliteration: the model cannot count those characters)."""
    if language:
        return _SYSTEM_IN_LANGUAGE.format(language=language, max_words=max_words)
    return _SYSTEM.format(max_words=max_words, max_chars=max_chars)


def user_text(user_prompt: str | None, *, date: str | None = None, camera: str | None = None,
              language: str | None = None) -> str:
    """The text that follows the image: the user's request plus metadata they may ask for.

    Capture date and camera come from the file's EXIF; the model cannot see them in the pixels,
    so a request such as "include date and primary subject" needs them as text.
    """
    parts = [(user_prompt or "").strip() or DEFAULT_USER_PROMPT]
    if language:
        parts.append(f"Write the name in {language}.")
    facts = []
    if date:
        facts.append(f"capture date {date}")
    if camera:
        facts.append(f"camera {camera}")
    if facts:
        parts.append("Metadata (use only if asked): " + "; ".join(facts) + ".")
    return "\n".join(parts)


def chat_messages(user_prompt: str | None, *, date: str | None = None, camera: str | None = None,
                  language: str | None = None, max_chars: int = 60, max_words: int = 10) -> list[dict]:
    """Messages in the transformers chat format, with one image placeholder."""
    system = system_prompt(language=language, max_chars=max_chars, max_words=max_words)
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": user_text(user_prompt, date=date, camera=camera, language=language)},
            ],
        },
    ]
