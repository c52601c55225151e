"""Where a checkpoint lives, found without loading torch or the weights (what it accepts: model.vision)."""

from __future__ import annotations

from pathlib import Path

from renamer_ray.errors import one_line

TOY_MODEL = "toy-shapes"


def resolve_checkpoint(model_id: str) -> str:
    """`toy-shapes` → the checkpoint shipped inside the package; anything else unchanged."""
    if model_id == TOY_MODEL:
        return str(Path(__file__).resolve().parent / "checkpoints" / TOY_MODEL)
    return model_id



class ModelUnavailable(RuntimeError):
    """The model is neither a folder here nor in the Hugging Face cache, and cannot be downloaded."""


# What from_pretrained reads of a Qwen2-VL checkpoint (not the hub's other formats of the weights).
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "tokenizer*"]


def fetch_checkpoint(model_id: str, announce=print) -> str:
    """A local folder for ``model_id``: ``toy-shapes`` and local paths as they are; a hub id from the
    Hugging Face cache, downloaded first where it is not there yet (with huggingface_hub's own
    progress bars, after ``announce`` says what is coming), so that a run's model actors, on this
    machine, load it from the cache instead of downloading unseen."""
    path = resolve_checkpoint(model_id)
    if Path(path).is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return snapshot_download(model_id, allow_patterns=CHECKPOINT_FILES, local_files_only=True)
    except (OSError, ValueError, HfHubHTTPError):
        pass  # not in the cache yet
    announce(f"downloading {model_id} into the Hugging Face cache (once; Qwen2-VL-2B-Instruct is about 4.5 GB)")
    try:
        return snapshot_download(model_id, allow_patterns=CHECKPOINT_FILES)
    except (OSError, ValueError, HfHubHTTPError) as exc:
        raise ModelUnavailable(f"the model {model_id!r} is not a folder here and could not be downloaded from the "
                               f"Hugging Face hub ({one_line(exc)}); set --model or MODEL_ID to a local checkpoint "
                               "folder, or to toy-shapes for the bundled test model") from None
