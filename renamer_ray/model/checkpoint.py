"""Where a checkpoint lives, found without loading torch or the weights (what it accepts: model.vision)."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL = "toy-shapes"


def resolve_checkpoint(model_id: str) -> str:
    """`toy-shapes` → the checkpoint shipped inside the package; anything else unchanged."""
    if model_id == TOY_MODEL:
        return str(Path(__file__).resolve().parent / "checkpoints" / TOY_MODEL)
    return model_id

