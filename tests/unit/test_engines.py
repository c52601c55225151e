"""ENGINE settings and the engines' pure parts: validation, the secret masked, the stage the one
factory chooses, the request an endpoint gets, the vLLM processor's rows and structured-output
pattern, and the clear line a run without vLLM stops with. The vLLM stage itself runs with a
stand-in for vLLM in tests/integration/test_vllm_engine.py (vLLM needs a GPU and is not installed here)."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image

from renamer_ray.cli import main
from renamer_ray.config import ConfigError, load_settings
from renamer_ray.pipeline.columns import DECODED, ROW
from renamer_ray.pipeline.endpoint import AskEndpoint
from renamer_ray.pipeline.engines import NamerRef, naming_stage
from renamer_ray.pipeline.places import CannotStart
from renamer_ray.pipeline.run import RunOptions, run
from renamer_ray.pipeline.vllm_stage import EngineUnavailable, FromVllm, VllmEngine, check_gpus, vllm_request
from renamer_ray.naming import prompts
from renamer_ray.naming.rules import name_regex
from tests.support.output import said


def test_openai_needs_an_endpoint_url_and_the_url_must_be_http():
    with pytest.raises(ConfigError, match="ENGINE=openai needs ENGINE_URL"):
        load_settings(engine="openai")
    with pytest.raises(ConfigError, match="ENGINE_URL must be an http"):
        load_settings(engine="openai", engine_url="127.0.0.1:8000/v1")
    with pytest.raises(ConfigError, match="ENGINE"):
        load_settings(engine="tensorrt")
    with pytest.raises(ConfigError, match="ENGINE_CONCURRENCY"):
        load_settings(engine_concurrency=0)
    settings = load_settings(engine="openai", engine_url="http://127.0.0.1:8000/v1", model_id="toy-shapes")
    assert settings.endpoint_model == "toy-shapes"
    assert load_settings(engine_model="qwen2-vl", model_id="toy-shapes").endpoint_model == "qwen2-vl"


def test_the_engine_key_comes_from_the_environment_and_is_masked(monkeypatch, capsys):
    monkeypatch.setenv("ENGINE", "openai")
    monkeypatch.setenv("ENGINE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("ENGINE_API_KEY", "sk-very-secret")
    assert load_settings().engine_api_key == "sk-very-secret"
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "sk-very-secret" not in out
    line = next(line for line in out.splitlines() if line.startswith("ENGINE_API_KEY"))
    assert line.split()[1] == "***"


def test_the_engine_picks_the_model_stage_and_the_warm_namer_wins():
    """(Each engine's place in the whole pipeline is checked in test_stages.py.)"""
    def model_stage(**kwargs):
        return type(naming_stage(load_settings(model_id="toy-shapes", **kwargs))).__name__

    assert model_stage() == "ModelPool"
    assert model_stage(engine="openai", engine_url="http://h/v1") == "AskEndpoint"
    assert model_stage(engine="vllm") == "VllmEngine"
    named = naming_stage(load_settings(engine="openai", engine_url="http://h/v1"), namer=NamerRef())
    assert type(named).__name__ == "AskNamer"
    assert type(naming_stage(load_settings(engine="vllm"), uses_model=False, namer=NamerRef())).__name__ == "NoModel"


def test_concurrency_is_bounded_across_the_asking_tasks():
    stage = AskEndpoint(load_settings(engine="openai", engine_url="http://h/v1", engine_concurrency=8))
    assert stage.map_args()["concurrency"] * stage.client[3] <= 8
    one = AskEndpoint(load_settings(engine="openai", engine_url="http://h/v1", engine_concurrency=1))
    assert one.map_args()["concurrency"] == 1 and one.client[3] == 1


def test_the_endpoint_gets_the_namers_prompt_and_a_lossless_image():
    from renamer_ray.model.answers import first_line
    from renamer_ray.model.openai_engine import ImageContext, chat_request, png_data_url

    image = Image.new("RGB", (28, 56), (10, 200, 30))
    url = png_data_url(image)
    assert url.startswith("data:image/png;base64,")
    back = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert back.tobytes() == image.tobytes()
    body = chat_request("m", url, "include the date", ImageContext(date="2024-05-01"), max_chars=30, max_words=4)
    assert body["model"] == "m" and body["temperature"] == 0 and body["max_tokens"] == 60
    assert body["messages"][0]["content"] == prompts.system_prompt(max_chars=30, max_words=4)
    text = body["messages"][1]["content"][1]["text"]
    assert text == prompts.user_text("include the date", date="2024-05-01")
    assert first_line("\n  red-circle \nbecause it is red") == "red-circle"


def test_a_structured_request_asks_for_the_name_in_the_rules_words_and_its_answer_is_read():
    from renamer_ray.model.openai_engine import JSON_TOKENS, chat_request, structured_name

    plain = chat_request("m", "data:image/png;base64,AA==", None, max_words=3)
    assert "response_format" not in plain
    body = chat_request("m", "data:image/png;base64,AA==", None, max_words=3, max_tokens=60, structured=True)
    assert body["max_tokens"] == 60 + JSON_TOKENS  # room for the JSON around the name
    shape = body["response_format"]
    assert shape["type"] == "json_schema" and shape["json_schema"]["strict"] is True
    schema = shape["json_schema"]["schema"]
    assert schema["required"] == ["name"] and schema["additionalProperties"] is False
    pattern = re.compile(schema["properties"]["name"]["pattern"])
    assert pattern.search("red-circle-2") and not pattern.search("a-b-c-d") and not pattern.search("x red-circle")
    assert structured_name('{"name": "red-circle"}') == "red-circle"
    assert structured_name('{"name": "red-circ') == "red-circ", "cut short by the token limit"
    assert structured_name("red-circle\nbecause") == "red-circle", "a server that ignored response_format"
    assert structured_name('["red-circle"]') == '["red-circle"]' and structured_name("") == ""


def test_the_vllm_pattern_keeps_names_in_the_rules_words():
    pattern = re.compile(name_regex(3, None))
    assert pattern.fullmatch("red-circle-2") and not pattern.fullmatch("a-b-c-d")
    assert not pattern.fullmatch("Red Circle") and not pattern.fullmatch("-red") and not pattern.fullmatch("")
    assert re.fullmatch(name_regex(3, "Japanese"), "赤い丸")


def decoded_row(**changes) -> dict:
    row = {name: None for name in DECODED.names}
    row.update(source="/s/a.png", relative="a.png", size=10, mtime=1.5, index=1, skipped=False, target_root="/t",
               template="{subject}", resume=False, flat=False, width=28, height=28, rgb=b"\x80" * 28 * 28 * 3,
               date="2024-05-01", prompt=None)
    row.update(changes)
    return row


def test_vllm_rows_go_in_as_chat_requests_and_come_out_as_rows():
    open_row, failed = decoded_row(), decoded_row(relative="b.png", error="not an image", rgb=None)
    asked = [vllm_request(row, max_new_tokens=60) for row in (open_row, failed)]
    messages = asked[0]["messages"]
    assert messages[1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert messages[0]["content"] == [{"type": "text", "text": prompts.system_prompt()}]
    assert asked[0]["sampling_params"]["structured_outputs"] == {"regex": name_regex(10, None)}
    assert asked[1]["sampling_params"]["max_tokens"] == 1
    answered = [{**asked[0], "generated_text": "green-square\nextra"},
                {**asked[1], "generated_text": "-"},
                {**vllm_request(decoded_row(relative="c.png"), max_new_tokens=60), "generated_text": "",
                 "__inference_error__": "CUDA out of memory"}]
    import pyarrow as pa

    out = FromVllm()(pa.Table.from_pylist([{k: r.get(k) for k in ("renamer_row", "generated_text",
                                                                    "__inference_error__")} for r in answered]))
    assert out.schema == ROW
    rows = out.to_pylist()
    assert rows[0]["raw"] == "green-square" and rows[0]["error"] is None and rows[0]["mtime"] == 1.5
    assert rows[1]["raw"] is None and rows[1]["error"] == "not an image"
    assert rows[2]["raw"] is None and "CUDA out of memory" in rows[2]["error"]
    assert json.loads(asked[0]["renamer_row"])["relative"] == "a.png"


def test_a_run_with_engine_vllm_and_no_vllm_stops_with_one_clear_line(tmp_path):
    from tests.support.images import drawn_files

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(drawn_files(seed=3, count=1, max_side=100)[0][0])
    with pytest.raises(CannotStart, match=r"ENGINE=vllm needs vLLM, which this installation lacks: pip install "
                                          r"'renamer-ray\[vllm\]'"):
        run(RunOptions(source=str(tmp_path / "src"), target=str(tmp_path / "dst")), load_settings(engine="vllm"))
    with pytest.raises(EngineUnavailable, match="GPUs only"):
        check_gpus(load_settings(engine="vllm"), {"CPU": 4})
    check_gpus(load_settings(engine="vllm", model_device="cuda"), {"CPU": 4})  # an autoscaler may add them
    with pytest.raises(EngineUnavailable, match="needs vLLM"):
        VllmEngine(load_settings(engine="vllm")).processor()


def test_the_cli_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from tests.support.images import drawn_files

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(drawn_files(seed=4, count=1, max_side=100)[0][0])
    monkeypatch.setenv("ENGINE", "vllm")
    assert main(["rename", str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    err = said(capsys.readouterr().err)
    assert len(err) == 1 and "ENGINE=vllm needs vLLM" in err[0]
