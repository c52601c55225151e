"""The model batch a GPU's free memory holds (model/memory.py), for the full-size Qwen2-VL-2B."""

from transformers import Qwen2VLConfig

from renamer_ray.model.memory import MAX_MODEL_BATCH, batch_memory

GIB = 2 ** 30
QWEN2_VL_2B = Qwen2VLConfig(
    vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, patch_size=14,
                       spatial_merge_size=2, temporal_patch_size=2),
    text_config=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                     num_key_value_heads=2, vocab_size=151936))


def test_an_h100_takes_the_cap_and_a_t4_a_batch_that_fits_its_16_gb():
    fp16 = batch_memory(QWEN2_VL_2B, max_pixels=786_432, new_tokens=60, dtype_bytes=2)
    assert fp16.images_that_fit(75 * GIB) == MAX_MODEL_BATCH, "80 GB less the weights: the cap binds"
    t4 = fp16.images_that_fit(int(10.5 * GIB))  # 15 GiB usable on a T4, 4.4 GB of fp16 weights
    assert 12 <= t4 < MAX_MODEL_BATCH and t4 * fp16.per_image + fp16.fixed < 10.5 * GIB


def test_smaller_images_fit_more_and_no_room_still_names_one_at_a_time():
    large = batch_memory(QWEN2_VL_2B, max_pixels=786_432, new_tokens=60, dtype_bytes=2)
    small = batch_memory(QWEN2_VL_2B, max_pixels=200_704, new_tokens=60, dtype_bytes=2)
    assert small.images_that_fit(8 * GIB) > large.images_that_fit(8 * GIB)
    assert large.images_that_fit(GIB) == 1, "too little room: one image per batch, never none"
    fp32 = batch_memory(QWEN2_VL_2B, max_pixels=786_432, new_tokens=60, dtype_bytes=4)
    assert fp32.per_image > large.per_image
