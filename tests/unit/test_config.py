import pytest

from renamer_ray.config import DEFAULT_MAX_NEW_TOKENS, ConfigError, load_settings

SEED_VARIABLES = ["AWS_REGION", "S3_IN_BUCKET", "S3_OUT_BUCKET", "SQS_QUEUE_URL", "MODEL_ID", "MAX_PIXELS",
                  "MAX_NEW_TOKENS", "BATCH_SIZE", "API_PORT", "AWS_ENDPOINT_URL"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in SEED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_seeds(clean_env):
    s = load_settings()
    assert (s.aws_region, s.model_id, s.max_pixels, s.batch_size, s.api_port) == (
        "us-east-1", "Qwen/Qwen2-VL-2B-Instruct", 786_432, 12, 80)
    # 15 (the seed's value) cannot hold a 60-character name; ours can, one character per token.
    assert s.max_new_tokens == DEFAULT_MAX_NEW_TOKENS >= 60
    assert s.aws_endpoint_url is None and s.sqs_queue_url is None
    assert s.model_actor_resources == {}


def test_values_come_from_the_environment(clean_env):
    clean_env.setenv("MODEL_ID", "toy-shapes")
    clean_env.setenv("MAX_PIXELS", "401408")
    clean_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    clean_env.setenv("MODEL_ACTOR_RESOURCES", '{"spot-namer": 1}')
    s = load_settings()
    assert (s.model_id, s.max_pixels, s.aws_endpoint_url) == ("toy-shapes", 401_408, "http://127.0.0.1:5000")
    assert s.model_actor_resources == {"spot-namer": 1}


@pytest.mark.parametrize("name,value", [("MAX_PIXELS", "lots"), ("BATCH_SIZE", "0"), ("API_PORT", "70000"),
                                        ("MAX_NEW_TOKENS", "-1"), ("MODEL_DTYPE", "float8"),
                                        ("MODEL_ACTOR_RESOURCES", "spot: 1"), ("MODEL_ACTOR_RESOURCES", '{"CPU": 2}'),
                                        ("MODEL_ACTOR_RESOURCES", '{"spot": -1}')])
def test_invalid_values_fail_naming_the_variable(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


@pytest.mark.parametrize("env,words", [
    ({"HEARTBEAT_SECONDS": "120", "VISIBILITY_TIMEOUT": "120"}, "HEARTBEAT_SECONDS (120) must be less than VISIBILITY_TIMEOUT"),
    ({"NAMER_MIN_REPLICAS": "3", "NAMER_MAX_REPLICAS": "2"}, "NAMER_MIN_REPLICAS must not exceed NAMER_MAX_REPLICAS"),
])
def test_settings_that_cannot_work_together_are_refused_at_start(clean_env, env, words):
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_settings()
