"""Build and train the `toy-shapes` checkpoint: a tiny Qwen2-VL that names coloured shapes.

The checkpoint is the real Qwen2-VL architecture (``Qwen2VLForConditionalGeneration``) with a
random small config, a byte-level BPE tokenizer built with the `tokenizers` library and the
standard Qwen2-VL processor and chat template. It is trained here, deterministically, on images
from :mod:`renamer_ray.toy.shapes` to answer ``<colour>-<shape>``, using exactly the prompt
the namer sends at inference. Run::

    .venv/bin/python scripts/train_toy_checkpoint.py            # writes renamer_ray/model/checkpoints/toy-shapes

Stage 1 trains the vision tower alone as a 12-way classifier (~7 min on one core), stage 2 the
whole model end to end on the chat prompt (~6 min); it prints held-out accuracy at the end
(1.000 on 240 fresh images for the shipped checkpoint).
"""

from __future__ import annotations

import argparse
import io
import random
import time
from pathlib import Path

import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from renamer_ray import prompts
from renamer_ray.toy.shapes import COLOURS, LABELS, SHAPES, draw_shape

OUT = Path(__file__).resolve().parents[1] / "renamer_ray" / "model" / "checkpoints" / "toy-shapes"

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# The official Qwen2-VL chat template.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Pixels per image the toy sees (the namer never sends more than a checkpoint's own max_pixels).
TOY_MAX_PIXELS = 56 * 112
TOY_MIN_PIXELS = 56 * 56

EXAMPLE_PROMPTS = [
    None, "", "include date and primary subject", "describe the main object",
    "short name please", "name it for a photo library", "what is in the picture?",
    "use kebab-case and mention the colour",
]
EXAMPLE_CAMERAS = [None, None, "Canon EOS R5", "Apple iPhone 15 Pro", "NIKON D750", "Google Pixel 8"]


def random_prompt(rng: random.Random) -> tuple[str | None, str | None, str | None]:
    date = f"{rng.randint(1995, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if rng.random() < 0.4 else None
    return rng.choice(EXAMPLE_PROMPTS), date, rng.choice(EXAMPLE_CAMERAS)


def build_tokenizer() -> PreTrainedTokenizerFast:
    corpus = [prompts.SYSTEM_PROMPT, prompts.DEFAULT_USER_PROMPT, CHAT_TEMPLATE]
    corpus += [p for p in EXAMPLE_PROMPTS if p] + [c for c in EXAMPLE_CAMERAS if c]
    corpus += [prompts.user_text("x", date="2024-01-31", camera="Canon EOS R5")]
    corpus += list(LABELS) * 20 + list(COLOURS) * 20 + list(SHAPES) * 20
    corpus += ["system", "user", "assistant", "You are a helpful assistant."] * 5
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:], padding_side="left", model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(max_pixels: int = TOY_MAX_PIXELS) -> Qwen2VLProcessor:
    tokenizer = build_tokenizer()
    image_processor = Qwen2VLImageProcessor(min_pixels=TOY_MIN_PIXELS, max_pixels=max_pixels)
    video_processor = Qwen2VLVideoProcessor(min_pixels=TOY_MIN_PIXELS, max_pixels=max_pixels)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                            video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def build_model(tokenizer: PreTrainedTokenizerFast, vision_depth: int = 2,
                vision_width: int = 128) -> Qwen2VLForConditionalGeneration:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    hidden = 128
    config = Qwen2VLConfig(
        vision_config=dict(depth=vision_depth, embed_dim=vision_width, hidden_size=hidden, num_heads=4, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=256, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    return model


def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """Round-trip through a lossy codec sometimes, as uploaded JPEG/WebP/HEIC files are."""
    fmt = rng.choice(["PNG", "JPEG", "WEBP", None])
    if fmt in (None, "PNG"):
        return image
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=rng.randint(40, 95))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def training_batch(processor: Qwen2VLProcessor, rng: random.Random, size: int, max_side: int):
    """Prompt + answer tokens for ``size`` fresh images; loss only on the answer."""
    images, texts, answer_lens = [], [], []
    for _ in range(size):
        sample = draw_shape(rng, max_side=max_side)
        image = augment(sample.image, rng)
        user_prompt, date, camera = random_prompt(rng)
        prompt = processor.apply_chat_template(
            prompts.chat_messages(user_prompt, date=date, camera=camera), add_generation_prompt=True, tokenize=False)
        answer = sample.label + "<|im_end|>"
        images.append(image)
        texts.append(prompt + answer)
        answer_lens.append(len(processor.tokenizer(answer, add_special_tokens=False)["input_ids"]))
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left")
    labels = torch.full_like(batch["input_ids"], -100)
    for row, n in enumerate(answer_lens):
        labels[row, -n:] = batch["input_ids"][row, -n:]
    batch["labels"] = labels
    return batch


def pretrain_vision(model, processor, rng: random.Random, steps: int, batch: int, max_side: int, lr: float) -> None:
    """Stage 1: train the vision tower alone to tell the 12 classes apart (mean-pooled merger
    output → linear probe), as real VLMs start from a pretrained vision encoder. End-to-end
    training alone learns colour quickly but shape only very slowly through the language model."""
    head = torch.nn.Linear(model.config.text_config.hidden_size, len(LABELS))
    params = list(model.model.visual.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    started, hits, seen = time.time(), 0, 0
    for step in range(1, steps + 1):
        samples = [draw_shape(rng, max_side=max_side) for _ in range(batch)]
        inputs = processor.image_processor(images=[augment(s.image, rng) for s in samples], return_tensors="pt")
        tokens = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
        logits = head(torch.stack([t.mean(dim=0) for t in tokens]))
        target = torch.tensor([LABELS.index(s.label) for s in samples])
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        hits += (logits.argmax(-1) == target).sum().item()
        seen += batch
        if step % 250 == 0:
            print(f"vision {step:5d}  loss {loss.item():.4f}  train-acc {hits / seen:.3f}  {time.time() - started:6.0f}s", flush=True)
            hits = seen = 0


@torch.no_grad()
def accuracy(model, processor, rng: random.Random, n: int, max_side: int) -> float:
    model.eval()
    correct = 0
    for start in range(0, n, 16):
        samples = [draw_shape(rng, max_side=max_side) for _ in range(min(16, n - start))]
        texts = [processor.apply_chat_template(prompts.chat_messages(None), add_generation_prompt=True, tokenize=False)
                 for _ in samples]
        batch = processor(text=texts, images=[augment(s.image, rng) for s in samples], return_tensors="pt",
                          padding=True, padding_side="left")
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
        answers = processor.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += sum(a.strip() == s.label for a, s in zip(answers, samples))
    model.train()
    return correct / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=1500, help="stage 2: the whole model, end to end")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max-side", type=int, default=320, help="largest training image side (px)")
    parser.add_argument("--vision-lr", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--max-pixels", type=int, default=TOY_MAX_PIXELS)
    parser.add_argument("--vision-depth", type=int, default=2)
    parser.add_argument("--vision-width", type=int, default=128)
    parser.add_argument("--vision-steps", type=int, default=6000, help="stage 1: vision tower alone")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; the shipped checkpoint was made with 1 (float sums depend on it)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.use_deterministic_algorithms(True)
    processor = build_processor(args.max_pixels)
    model = build_model(processor.tokenizer, args.vision_depth, args.vision_width)
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params / 1e6:.2f} M")
    model.train()
    if args.vision_steps:
        pretrain_vision(model, processor, rng, args.vision_steps, args.batch, args.max_side, args.vision_lr)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    model.train()
    started = time.time()
    for step in range(1, args.steps + 1):
        batch = training_batch(processor, rng, args.batch, args.max_side)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        if step % 50 == 0 or step == 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - started:6.0f}s", flush=True)
        if step % args.eval_every == 0 and step < args.steps:
            print(f"  held-out accuracy {accuracy(model, processor, random.Random(step), 96, args.max_side):.3f}")
    acc = accuracy(model, processor, random.Random(args.seed + 1), 240, args.max_side)
    print(f"held-out accuracy: {acc:.3f}")
    model.generation_config.max_new_tokens = 16
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
