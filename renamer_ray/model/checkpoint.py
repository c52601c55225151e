"""Where a checkpoint lives and what it accepts, read without loading torch or the weights."""

from __future__ import annotations

import json
from pathlib import Path

TOY_MODEL = "toy-shapes"


def resolve_checkpoint(model_id: str) -> str:
    """`toy-shapes` → the checkpoint shipped inside the package; anything else unchanged."""
    if model_id == TOY_MODEL:
        return str(Path(__file__).resolve().parent / "checkpoints" / TOY_MODEL)
    return model_id


def pixel_budget(model_id: str, max_pixels: int) -> int:
    """Pixels per image worth decoding: MAX_PIXELS, or less if a local checkpoint's processor caps
    it (the toy's 6,272), so the decode stage never ships pixels the processor would throw away.
    Hub ids are not looked up (no network at run time): MAX_PIXELS applies."""
    config = Path(resolve_checkpoint(model_id)) / "processor_config.json"
    if not config.is_file():
        return max_pixels
    size = json.loads(config.read_text()).get("image_processor", {}).get("size", {})
    return min(max_pixels, int(size.get("longest_edge", max_pixels)))
