"""Model adapter: the Qwen2-VL namer, constrained decoding, and the toy-shapes checkpoint."""
