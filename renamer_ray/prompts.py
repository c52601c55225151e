"""The chat prompt the namer sends with each image (pure: no I/O, no model imports)."""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are an image filename generator. Return ONLY a safe filename in kebab-case. "
    "ASCII only, <=10 words, <=60 characters. No punctuation except '-'."
)
DEFAULT_USER_PROMPT = "Name this image after its primary subject."


def user_text(user_prompt: str | None, *, date: str | None = None, camera: str | None = None) -> str:
    """The text that follows the image: the user's request plus metadata they may ask for.

    Capture date and camera come from the file's EXIF; the model cannot see them in the pixels,
    so a request such as "include date and primary subject" needs them as text.
    """
    parts = [(user_prompt or "").strip() or DEFAULT_USER_PROMPT]
    facts = []
    if date:
        facts.append(f"capture date {date}")
    if camera:
        facts.append(f"camera {camera}")
    if facts:
        parts.append("Metadata (use only if asked): " + "; ".join(facts) + ".")
    return "\n".join(parts)


def chat_messages(user_prompt: str | None, *, date: str | None = None, camera: str | None = None) -> list[dict]:
    """Messages in the transformers chat format, with one image placeholder."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": user_text(user_prompt, date=date, camera=camera)},
            ],
        },
    ]
