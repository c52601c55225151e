"""ENGINE=vllm through its real stage code on local Ray, with a stand-in for vLLM
(``tests/support/fake_vllm.py``) given to the stage the factory chose: the processor is configured
from the settings, every row goes in as a chat request and comes out as a row, a request the engine
fails fails its file alone, and rows that were not open pass through it untouched."""

from __future__ import annotations

import io

from PIL import Image

from renamer_ray.config import load_settings
from renamer_ray.model.checkpoint import resolve_checkpoint
from renamer_ray.pipeline.build import PipelineOptions, stages
from renamer_ray.pipeline.columns import LISTED, table
from renamer_ray.pipeline.rows import Wishes, listed_row
from renamer_ray.pipeline.vllm_stage import VllmEngine
from tests.support import fake_vllm


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_plan_with_engine_vllm_names_each_image_through_the_vllm_stage(ray_local, tmp_path):
    settings = load_settings(model_id="toy-shapes", engine="vllm", model_device="cuda", batch_size=4)
    pipeline = stages(settings, PipelineOptions(dry_run=True))
    engine = pipeline[2]
    assert isinstance(engine, VllmEngine)
    engine.llm = fake_vllm

    files = {"a.png": png(fake_vllm.COLOURS["red"]), "b.png": png(fake_vllm.COLOURS["blue"]),
             "c.png": png(fake_vllm.COLOURS["red"]), "fails.png": png(fake_vllm.COLOURS["green"]),
             "broken.png": b"not an image", "notes.txt": b"a text file"}
    (tmp_path / "src").mkdir()
    rows = []
    for index, (name, data) in enumerate(sorted(files.items()), start=1):
        (tmp_path / "src" / name).write_bytes(data)
        wishes = Wishes(target_root=str(tmp_path / "dst"), prompt=fake_vllm.FAIL if name == "fails.png" else None)
        rows.append(listed_row(str(tmp_path / "src" / name), name, wishes, size=len(data), mtime=1.0, index=index,
                               image=name.endswith(".png")))
    dataset = ray_local.data.from_arrow(table(rows, LISTED))
    for stage in pipeline:
        dataset = stage.apply(dataset)
    out = {row["relative"]: row for row in dataset.iter_rows()}

    assert (out["a.png"]["name"], out["b.png"]["name"], out["c.png"]["name"]) == (
        "red-image.png", "blue-image.png", "red-image-001.png"), "named by the engine, then by the rules"
    assert out["a.png"]["raw"] == "red-image" and out["a.png"]["status"] == "ok"
    assert out["fails.png"]["status"] == "error", out["fails.png"]
    assert out["fails.png"]["error"].startswith("the model could not process this image: the engine could not serve")
    assert out["broken.png"]["status"] == "error" and "model" not in out["broken.png"]["error"], "its decode error"
    assert out["notes.txt"]["status"] == "skipped"
    assert not (tmp_path / "dst").exists(), "a plan copies nothing"

    config = engine.processor().config
    assert (config.batch_size, config.concurrency, config.should_continue_on_error) == (4, 1, True)
    assert config.model_source == str(resolve_checkpoint("toy-shapes"))
    assert config.engine_kwargs["mm_processor_kwargs"] == {"max_pixels": settings.max_pixels}
