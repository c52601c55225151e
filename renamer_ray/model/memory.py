"""How many images one model batch may hold on a GPU: an estimate from the model's config and the
card's free memory, corrected at run time (the namer halves it after an out-of-memory error).

Per image, at the pixel budget: the language model's KV cache over the whole sequence (visual
tokens, prompt, answer), plus the largest transients of a forward pass that exist for every image
of the batch at once: the vision tower's qkv and MLP activations over the image's patches, and the
language model's MLP activations over its tokens during prefill; the pixels themselves (fp32 from
the processor). Attention outside flash attention is split per image in the vision tower, so its
score matrix (heads x patches², one image at a time) is a fixed cost, not a per-image one.

For Qwen2-VL-2B at 786,432 px in fp16 this is ≈ 0.31 GB per image and ≈ 1.6 GB fixed: on an 80 GB
H100 the cap (64) binds; on a 16 GB T4 (≈ 10.5 GB free beside fp16 weights) 27. Unmeasured on a GPU so far: the namer starts
from it and halves on the first out-of-memory error (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MODEL_BATCH = 64          # beyond this an H100 gains nothing (the benchmark's sweep ends here)
USABLE_SHARE = 0.9            # of the free memory: the allocator's fragmentation and the CUDA context
SAFETY = 1.5                  # on the per-image transients, which the estimate counts only roughly
PROMPT_TOKENS = 120           # the namer's chat prompt around the image, Qwen2's tokenizer (≈ 90–120)


@dataclass(frozen=True)
class BatchMemory:
    """Bytes one image of a batch needs, and bytes one batch needs whatever its size."""

    per_image: int
    fixed: int

    def images_that_fit(self, free_bytes: int, cap: int = MAX_MODEL_BATCH) -> int:
        """The largest batch whose estimate fits ``free_bytes`` (at least 1, at most ``cap``)."""
        usable = free_bytes * USABLE_SHARE - self.fixed
        return max(1, min(cap, int(usable // self.per_image)))


def batch_memory(config, max_pixels: int, new_tokens: int, dtype_bytes: int) -> BatchMemory:
    """The estimate for a Qwen2-VL ``config`` (its ``vision_config`` and ``text_config``)."""
    vision, text = config.vision_config, config.text_config
    patches = max_pixels // vision.patch_size ** 2
    tokens = patches // vision.spatial_merge_size ** 2 + PROMPT_TOKENS + new_tokens
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_cache = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * tokens * dtype_bytes
    vision_mlp = int(vision.embed_dim * vision.mlp_ratio)
    vision_transient = patches * (3 * vision.embed_dim + vision_mlp + 2 * vision.embed_dim) * dtype_bytes
    text_transient = tokens * (3 * text.intermediate_size + 4 * text.hidden_size) * dtype_bytes
    pixel_values = patches * vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2 * 4
    per_image = kv_cache + SAFETY * (vision_transient + text_transient) + pixel_values
    attention_scores = vision.num_heads * patches ** 2 * dtype_bytes  # one image at a time, if not fused
    return BatchMemory(per_image=int(per_image), fixed=int(attention_scores + 2 ** 30))
