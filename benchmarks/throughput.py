"""Images per second: the seed's worker loop vs the Ray Data pipeline, S3 → S3, same images.

(1) namer alone, in one process, the seed's design: for each batch of BATCH_SIZE keys, download,
    decode and resize inline, run the model, then copy each object to its new name;
(2) the full Ray Data pipeline (`renamer_ray.pipeline.run`) over the same prefix, with its
    CPU-seconds per image for each stage from Ray Data's own stats (``stage_cpu.py``).

Starts moto's S3 server on 127.0.0.1 (or uses AWS_ENDPOINT_URL), uploads N drawn images, prints
the figures and writes them to docs/benchmarks.md, each with the device, dtype, attention
implementation and library versions it was taken with, and the cost per 1,000 images on g4dn at the
measured rates. Also prints the compute-bound ceiling of Qwen2-VL-2B for the images used: matmul
FLOPs of their real visual-token counts at MAX_PIXELS (no LM head over the prompt; see
``model_alone.image_flops``) against the matmul peak measured on this machine's GPU, or, without a
GPU, against datasheet dense peaks (labelled as such). Usage::

    .venv/bin/python benchmarks/throughput.py --images 96            # CPU, toy-shapes
    MODEL_ID=/models/Qwen2-VL-2B-Instruct .venv/bin/python benchmarks/throughput.py   # a GPU node
    .venv/bin/python benchmarks/throughput.py --random-2b --loop-only  # GPU, no download, no Ray

``--random-2b`` builds the full-size Qwen2-VL-2B architecture from its published config with random
weights (speed does not depend on weight values) and the toy tokenizer, with MAX_NEW_TOKENS 20 (a
random model never emits its end token; 20 tokens is a typical name). ``--loop-only`` measures the
namer alone, for machines without Ray.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_alone  # noqa: E402  (benchmarks/model_alone.py: the FLOP count, prices, the GEMM peak)

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# Datasheet dense peaks: the fallback when no GPU is present to measure one (labelled as such).
PEAK_TFLOPS = {"T4 (fp16, g4dn)": 65, "A10G (bf16, g5)": 125, "L4 (bf16, g6)": 121, "H100 SXM (bf16)": 989}
TEXT_TOKENS = 60  # the namer's prompt without its image, in Qwen2's tokenizer (approximate)


def visual_patches(width: int, height: int, max_pixels: int) -> int:
    """Vision patches of one source image as the pipeline feeds it: the decode stage's resize plan
    (renamer_ray.model.vision.plan), then the processor's own resize to 28-px multiples."""
    from renamer_ray.model.vision import plan

    _, _, canvas_w, canvas_h = plan(width, height, max_pixels)
    grid_h, grid_w = model_alone.smart_resize_grid(canvas_w, canvas_h, max_pixels)
    return grid_h * grid_w


def qwen2vl_2b_tflop_split(max_pixels: int, text_tokens: int = TEXT_TOKENS, new_tokens: int = 20,
                           sizes: list[tuple[int, int]] | None = None) -> tuple[float, float]:
    """Matmul TFLOPs of Qwen2-VL-2B per image (2 FLOPs per multiply-add): (vision tower + merger,
    language model), averaged over the images of ``sizes`` (their real patch counts), or for one
    image filling ``max_pixels`` when none are given. No LM head over the prompt (generate keeps
    the last position's logits only); one per generated token."""
    patch_counts = ([visual_patches(w, h, max_pixels) for w, h in sizes] if sizes
                    else [max_pixels // (14 * 14)])
    vision = llm = 0.0
    for patches in patch_counts:
        v, prefill, decode = model_alone.image_flops(model_alone.FULL_2B, patches, patches // 4 + text_tokens,
                                                     new_tokens)
        vision, llm = vision + v, llm + prefill + decode
    return vision / len(patch_counts) / 1e12, llm / len(patch_counts) / 1e12


def qwen2vl_2b_tflop_per_image(max_pixels: int, sizes: list[tuple[int, int]] | None = None) -> float:
    return sum(qwen2vl_2b_tflop_split(max_pixels, sizes=sizes))


def t4_as_run_images_per_second(max_pixels: int, sizes: list[tuple[int, int]] | None = None) -> float:
    """The T4 ceiling on the namer's fallback path: fp16 language model on tensor cores (65 TFLOPS),
    the vision tower in fp32 (8.1 TFLOPS), as for a batch whose fp16 tower overflowed (the namer
    runs it in fp16 first). Datasheet peaks: an upper bound, not a measurement."""
    vision, llm = qwen2vl_2b_tflop_split(max_pixels, sizes=sizes)
    return 1 / (vision / 8.1 + llm / 65)


def build_random_qwen2vl_2b(folder: Path, max_pixels: int) -> str:
    """Qwen2-VL-2B-Instruct's architecture with random weights, saved with the toy's processor."""
    import torch
    from transformers import AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from renamer_ray.model.checkpoint import resolve_checkpoint

    processor = AutoProcessor.from_pretrained(resolve_checkpoint("toy-shapes"))
    processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": max_pixels}
    toy = Qwen2VLConfig.from_pretrained(resolve_checkpoint("toy-shapes"))
    config = Qwen2VLConfig(
        vision_config=dict(model_alone.FULL_2B["vision"]),
        text_config=dict(model_alone.FULL_2B["text"], bos_token_id=toy.text_config.bos_token_id,
                         eos_token_id=toy.text_config.eos_token_id, pad_token_id=toy.text_config.pad_token_id),
        image_token_id=toy.image_token_id, video_token_id=toy.video_token_id,
        vision_start_token_id=toy.vision_start_token_id, vision_end_token_id=toy.vision_end_token_id,
        tie_word_embeddings=True,
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    print(f"random Qwen2-VL-2B: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters in {folder}")
    return str(folder)


def start_s3() -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"]
    from renamer_ray.service.local.aws import start_moto

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    return start_moto()[1]


def upload_images(s3, bucket: str, count: int, seed: int = 7,
                  sizes: list[tuple[int, int]] | None = None) -> list[str]:
    """Upload ``count`` drawn JPEGs; their (width, height) are appended to ``sizes`` when given."""
    from renamer_ray.toy.shapes import draw_shape

    rng, keys = random.Random(seed), []
    for i in range(count):
        buf = io.BytesIO()
        image = draw_shape(rng, min_side=800, max_side=1600).image
        if sizes is not None:
            sizes.append(image.size)
        image.save(buf, format="JPEG", quality=90)
        keys.append(f"in/img_{i:05d}.jpg")
        s3.put_object(Bucket=bucket, Key=keys[-1], Body=buf.getvalue())
    return keys


def seed_worker_loop(s3, bucket: str, keys: list[str], settings, info: dict | None = None) -> tuple[float, float]:
    """The seed's worker: sequential batches, preprocessing inline. Returns (load s, run s); fills
    ``info`` with what the figures were taken with (device, dtype, attention implementation)."""
    from renamer_ray.images import decode
    from renamer_ray.model.vision import pixel_budget
    from renamer_ray.model.namer import ImageContext, Qwen2VLNamer
    from renamer_ray.naming import assign_unique, file_name, sanitize_stem

    started = time.perf_counter()
    namer = Qwen2VLNamer(settings.model_id, max_pixels=settings.max_pixels, max_new_tokens=settings.max_new_tokens)
    loaded = time.perf_counter()
    if info is not None:
        import torch

        device = (torch.cuda.get_device_name(namer.device) if namer.device.startswith("cuda")
                  else f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)")
        info.update(device=device, dtype=str(namer.dtype).removeprefix("torch."),
                    attn=namer.model.config._attn_implementation)
    budget = pixel_budget(settings.model_id, settings.max_pixels)  # as the pipeline's decode stage
    for start in range(0, len(keys), settings.batch_size):
        batch = keys[start:start + settings.batch_size]
        decoded = [decode(s3.get_object(Bucket=bucket, Key=k)["Body"].read(), max_pixels=budget)
                   for k in batch]
        answers = namer.name([d.to_pil() for d in decoded], [ImageContext(d.meta.date, d.meta.camera) for d in decoded])
        names = assign_unique([(k, sanitize_stem(a.raw or "")) for k, a in zip(batch, answers)])
        for key, d in zip(batch, decoded):
            s3.copy_object(Bucket=bucket, Key=f"seed-out/{start}/{file_name(names[key], d.meta.format)}",
                           CopySource={"Bucket": bucket, "Key": key})
    return loaded - started, time.perf_counter() - loaded


def ray_processes_cpu() -> dict[int, float]:
    """CPU-seconds so far of each process below this one: the local Ray's (GCS, raylet, workers,
    model actors). moto's S3 server runs in this process's threads, so it is not among them."""
    import psutil

    cpu = {}
    for process in psutil.Process().children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        cpu[process.pid] = times.user + times.system
    return cpu


def recorded_with(info: dict) -> str:
    """Device, dtype, attention implementation and library versions, for every figure."""
    import torch
    import transformers

    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    try:
        import ray

        versions += f", ray {ray.__version__}"
    except ImportError:
        pass
    return (f"device {info.get('device', '?')}, dtype {info.get('dtype', '?')}, attention "
            f"{info.get('attn', '?')}; {versions}; Python {platform.python_version()}")


def cost_line(rate: float, info: dict, what: str = "") -> str:
    """Cost per 1,000 images at a measured rate on g4dn.xlarge (meaningful on a T4 only)."""
    device = info.get("device", "?")
    note = "" if "T4" in device else f" (rate measured on {device}, not a T4)"
    return (f"{what + ' ' if what else ''}cost per 1,000 images at g4dn.xlarge prices{note}: "
            f"${model_alone.cost_per_1k(rate, model_alone.G4DN_XLARGE_ON_DEMAND):.4f} on-demand "
            f"(${model_alone.G4DN_XLARGE_ON_DEMAND}/h), "
            f"${model_alone.cost_per_1k(rate, model_alone.G4DN_XLARGE_SPOT):.4f} spot (${model_alone.G4DN_XLARGE_SPOT}/h)")


def ceiling(tflop: float, info: dict) -> str:
    """Images/s at 100 % of the matmul peak measured on this GPU; datasheet peaks without one."""
    import torch

    if torch.cuda.is_available():
        dtype = getattr(torch, info.get("dtype", "bfloat16"))
        peak = model_alone.gemm_peak_tflops(torch, "cuda", dtype, 8192)
        return (f"{peak / tflop:.0f} img/s at this GPU's measured {info.get('dtype')} matmul peak of "
                f"{peak:.0f} TFLOP/s ({torch.cuda.get_device_name()})")
    return ("no GPU here to measure a peak; at datasheet dense peaks (fallback, not measured): "
            + ", ".join(f"{gpu} {peak / tflop:.0f} img/s" for gpu, peak in PEAK_TFLOPS.items()))


def marginal_line(s3, bucket: str, keys: list[str], small: int, settings, loop_s: float,
                  pipeline_s: float) -> list[str]:
    """Both designs again on the first ``small`` images (after the full runs, so a one-time warm-up
    counts in the full run: the marginal figure errs high): each one's marginal cost per image is the
    difference of its two times over the images between, and the pipeline's fixed cost per run what
    its full run took beyond that."""
    from renamer_ray.pipeline.run import RunOptions, run

    for key in keys[:small]:
        s3.copy_object(Bucket=bucket, Key="small/" + key.split("/", 1)[1], CopySource={"Bucket": bucket, "Key": key})
    _, loop_small_s = seed_worker_loop(s3, bucket, keys[:small], settings)
    started = time.perf_counter()
    run(RunOptions(source=f"s3://{bucket}/small", target=f"s3://{bucket}/ray-small-out"), settings)
    pipe_small_s = time.perf_counter() - started
    loop_ms, pipe_ms = (1000 * (total - part) / (len(keys) - small) for total, part in
                        ((loop_s, loop_small_s), (pipeline_s, pipe_small_s)))
    return [f"- marginal cost per image ({len(keys)} images less {small}, runs of {loop_small_s:.1f} s and "
            f"{pipe_small_s:.1f} s): loop {loop_ms:.1f} ms, pipeline {pipe_ms:.1f} ms, {pipe_ms / loop_ms:.2f}× the "
            f"loop's; the pipeline's fixed cost per run ≈ {pipeline_s - len(keys) * pipe_ms / 1000:.1f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--random-2b", action="store_true", help="full-size 2B architecture, random weights")
    parser.add_argument("--loop-only", action="store_true", help="only (1): the namer alone (no Ray needed)")
    parser.add_argument("--small", type=int, help="images of a second, smaller run of (1) and (2): the marginal "
                        "cost per image is the difference of the two runs' times over the images between "
                        "(default: an eighth of --images; 0: no second run)")
    args = parser.parse_args()
    if args.random_2b:
        import tempfile

        from renamer_ray.config import load_settings as _settings

        os.environ["MODEL_ID"] = build_random_qwen2vl_2b(Path(tempfile.mkdtemp()), _settings().max_pixels)
        os.environ["MAX_NEW_TOKENS"] = "20"
    endpoint = start_s3()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("MODEL_ID", "toy-shapes")

    import boto3

    from renamer_ray.config import load_settings

    settings = load_settings()
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=settings.aws_region)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    sizes: list[tuple[int, int]] = []
    keys = upload_images(s3, bucket, args.images, sizes=sizes)

    info: dict = {}
    load_s, loop_s = seed_worker_loop(s3, bucket, keys, settings, info)
    loop_rate = len(keys) / loop_s
    if args.loop_only:
        print(f"namer alone (seed loop): {loop_rate:.2f} images/s ({loop_s:.1f} s for {len(keys)}, "
              f"model load {load_s:.1f} s), model {settings.model_id}; {recorded_with(info)}; "
              f"{cost_line(loop_rate, info)}")
        return
    import ray

    import stage_cpu  # benchmarks/stage_cpu.py: CPU per pipeline stage (needs Ray: not for --loop-only)
    from renamer_ray.pipeline.run import RunOptions, ensure_ray, run

    ensure_ray()  # cluster start-up is not part of a run
    ray.data.DataContext.get_current().per_stage_map_timing = True  # splits fused operators' CPU by stage
    stats: list = []
    ray_cpu_before, driver_cpu_before = ray_processes_cpu(), time.thread_time()
    started = time.perf_counter()
    summary = run(RunOptions(source=f"s3://{bucket}/in", target=f"s3://{bucket}/ray-out"), settings,
                  on_stats=stats.append)
    pipeline_s = time.perf_counter() - started
    driver_cpu_s = time.thread_time() - driver_cpu_before
    ray_cpu_s = (None if os.environ.get("RAY_ADDRESS") else  # a joined cluster's processes are not ours to see
                 sum(seconds - ray_cpu_before.get(pid, 0.0) for pid, seconds in ray_processes_cpu().items()))
    assert summary.ok == len(keys), summary.failed
    stage_table = stage_cpu.table(stats[0], len(keys), driver_s=driver_cpu_s, ray_processes_s=ray_cpu_s)
    small = args.images // 8 if args.small is None else args.small
    marginal = marginal_line(s3, bucket, keys, small, settings, loop_s, pipeline_s) if 0 < small < len(keys) else []

    pipe_rate = len(keys) / pipeline_s
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Ray sees {ray.cluster_resources()}"
    tflop = qwen2vl_2b_tflop_per_image(settings.max_pixels, sizes)
    patches = sum(visual_patches(w, h, settings.max_pixels) for w, h in sizes) / len(sizes)
    lines = [
        f"- model `{settings.model_id}`, {len(keys)} JPEG images (800–1600 px), BATCH_SIZE {settings.batch_size}, "
        f"MAX_PIXELS {settings.max_pixels}; machine: {machine}",
        f"- (1) seed-style worker loop: {loop_rate:.2f} images/s ({loop_s:.1f} s, plus {load_s:.1f} s model load)",
        f"- (2) Ray Data pipeline S3→S3: {pipe_rate:.2f} images/s ({pipeline_s:.1f} s, model load, listing, "
        f"shuffle and manifest included)",
        f"- ratio pipeline / loop: {pipe_rate / loop_rate:.2f}×",
        *marginal,
        f"- taken with: {recorded_with(info)}",
        f"- {cost_line(pipe_rate, info, 'pipeline')}; {cost_line(loop_rate, info, 'loop')}",
        f"- Qwen2-VL-2B on these images at MAX_PIXELS {settings.max_pixels} (≈ {patches / 4:.0f} visual tokens "
        f"per image, {TEXT_TOKENS} text tokens, 20 new tokens, no LM head over the prompt): ≈ {tflop:.1f} TFLOP "
        f"per image; compute-bound ceiling: {ceiling(tflop, info)}"
        + f"; T4 with the vision tower in fp32 (the namer's fallback on overflow, datasheet peaks) "
        f"{t4_as_run_images_per_second(settings.max_pixels, sizes):.1f} img/s",
        "",
        f"CPU per stage of (2), from Ray Data's per-operator stats (benchmarks/stage_cpu.py): {len(keys)} images, "
        f"{pipeline_s:.1f} s wall on {os.cpu_count()} CPUs; moto's S3 server not included",
        "",
        *stage_table,
    ]
    print("\n".join(lines))
    if not args.no_write:
        DOC.parent.mkdir(exist_ok=True)
        stamp = time.strftime("%Y-%m-%d")
        block = f"\n### {stamp}: `python benchmarks/throughput.py --images {args.images}`\n\n" + "\n".join(lines) + "\n"
        text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        DOC.write_text(text + block)
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
