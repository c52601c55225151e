"""The deployment files are well-formed and secure by default, checked without AWS: Terraform parses,
is formatted, declares what it uses, outputs what the cluster config and the service read, and passes
checkov; the cluster config passes Ray's own schema; the Serve config passes Serve's deploy schema
and its import path imports; the node image's Dockerfile lints clean."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import ray
import yaml

from renamer_ray.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
TF, CLUSTER = REPO / "terraform", REPO / "cluster"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def _load_render():
    """cluster/render.py, the launcher config's renderer (a script beside the configs, not a package)."""
    spec = importlib.util.spec_from_file_location("render", CLUSTER / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()

FAKE_OUTPUTS = {
    "aws_region": "eu-west-1", "s3_in_bucket": "renamer-ray-input-123456789012-eu-west-1",
    "s3_out_bucket": "renamer-ray-output-123456789012-eu-west-1",
    "sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/renamer-ray-jobs",
    "sqs_dlq_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/renamer-ray-jobs-dlq",
    "head_instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/renamer-ray-head",
    "worker_instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/renamer-ray-worker",
    "node_role_arns": {"head": "arn:aws:iam::123456789012:role/renamer-ray-head",
                       "worker": "arn:aws:iam::123456789012:role/renamer-ray-worker"},
    "security_group_id": "sg-0123456789abcdef0",
    "vpc_id": "vpc-0123", "subnet_ids": ["subnet-0a", "subnet-0b"], "ray_cluster_name": "renamer-ray",
    "worker_instance_types": ["g4dn.xlarge"],
}


def blocks(kind: str) -> dict[str, dict]:
    """Every block of one kind (variable, output, …) across terraform/*.tf, by name."""
    out = {}
    for path in sorted(TF.glob("*.tf")):
        for block in hcl2.load(path.open()).get(kind, []):
            for name, body in block.items():
                out[name.strip('"')] = body
    return out


def default(name: str):
    value = blocks("variable")[name]["default"]
    return json.loads(value) if isinstance(value, str) and value.startswith('"') else value


def test_terraform_is_split_by_concern_parses_and_is_formatted():
    names = {p.name for p in TF.glob("*.tf")}
    assert {"versions.tf", "variables.tf", "s3.tf", "sqs.tf", "iam.tf", "network.tf", "outputs.tf"} <= names
    for path in TF.glob("*.tf"):
        hcl2.load(path.open())  # raises on a syntax error
    fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", str(TF)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_providers_are_pinned():
    text = (TF / "versions.tf").read_text()
    assert re.search(r'source\s*=\s*"hashicorp/aws"', text) and re.search(r'version\s*=\s*"~>\s*\d+\.\d+"', text)


def test_every_variable_used_is_declared_and_every_declared_one_used():
    declared = set(blocks("variable"))
    used = {m for path in TF.glob("*.tf") for m in re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text())}
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"


def test_outputs_are_what_the_cluster_config_and_the_service_read():
    outputs = set(blocks("output"))
    assert {"s3_in_bucket", "s3_out_bucket", "sqs_queue_url", "sqs_dlq_url", "head_instance_profile_arn",
            "worker_instance_profile_arn", "security_group_id"} <= outputs
    referenced = set(re.findall(r"FROM_TERRAFORM:([a-z_]+)", (CLUSTER / "aws.yaml").read_text()))
    assert referenced and referenced <= outputs
    assert set(render.SERVICE_ENV) <= outputs
    settings_fields = {name.upper() for name in Settings.model_fields}
    assert set(render.SERVICE_ENV.values()) <= settings_fields  # names the code really reads
    assert set(FAKE_OUTPUTS) == outputs  # the fixture below stays in step with terraform/outputs.tf


def test_queue_settings_agree_with_the_driver():
    settings = Settings()
    assert default("max_receive_count") == settings.max_receives
    assert default("visibility_timeout_seconds") == settings.visibility_timeout
    assert settings.visibility_timeout >= 2 * settings.heartbeat_seconds  # a missed beat is survivable


def test_checkov_finds_nothing_and_every_skip_says_why():
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: `make test` installs checkov in its own virtual environment")
    result = subprocess.run([str(CHECKOV), "-d", str(TF), "--framework", "terraform", "--quiet", "--compact",
                             "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    summary = (report[0] if isinstance(report, list) else report)["summary"]
    assert summary["parsing_errors"] == 0 and summary["passed"] > 0
    assert summary["failed"] == 0, result.stdout[:4000]
    skips = [line for p in TF.glob("*.tf") for line in p.read_text().splitlines() if "checkov:skip=" in line]
    assert len(skips) <= summary["skipped"]
    for line in skips:
        assert re.search(r"#checkov:skip=CKV2?_AWS_\d+:.{30,}", line), f"a skip without a reason: {line.strip()}"


@pytest.mark.parametrize("on_demand", [False, True])
def test_cluster_config_passes_rays_own_schema(on_demand):
    from ray.autoscaler._private.util import prepare_config, validate_config

    files = render.render(FAKE_OUTPUTS, image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/renamer-ray:0.1.0",
                          max_gpu_workers=3, on_demand=on_demand)
    config = yaml.safe_load(files["aws.rendered.yaml"])
    assert "FROM_TERRAFORM" not in files["aws.rendered.yaml"]
    validate_config(prepare_config(config))  # what `ray up` checks after filling defaults
    gpu, head = config["available_node_types"]["gpu"], config["available_node_types"][config["head_node_type"]]
    assert gpu["node_config"]["InstanceType"] == "g4dn.xlarge" and gpu["resources"]["GPU"] == 1
    assert gpu["min_workers"] == 0 and gpu["max_workers"] == config["max_workers"] == 3
    assert "GPU" not in head["resources"]
    # The head runs no Ray task (no untrusted image is decoded where the autoscaler's role lives).
    assert head["resources"]["CPU"] == 0 and "--num-cpus=0" in " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    # Ray's token authentication on every node, with the operator's token.
    assert "-e RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"] == {"/home/ray/.ray/auth_token": "~/.ray/auth_token",
                                     "/home/ray/.renamer-ray/secrets": "~/.renamer-ray/secrets"}
    # Secrets reach the nodes as files (RENAMER_RAY_SECRETS_DIR), never in a runtime_env or service.env,
    # which Ray's dashboard and state API show.
    assert "-e RENAMER_RAY_SECRETS_DIR=/home/ray/.renamer-ray/secrets" in config["docker"]["run_options"]
    shown = files["service.env"] + files["serve.rendered.yaml"] + files["driver-runtime-env.yaml"]
    from renamer_ray.config import SECRETS

    assert not [name for name in SECRETS if name.upper() in shown or name in shown]
    assert ("InstanceMarketOptions" in gpu["node_config"]) is not on_demand  # spot unless asked otherwise
    assert head["node_config"]["IamInstanceProfile"]["Arn"] == FAKE_OUTPUTS["head_instance_profile_arn"]
    assert gpu["node_config"]["IamInstanceProfile"]["Arn"] == FAKE_OUTPUTS["worker_instance_profile_arn"]
    for node in (gpu, head):
        assert node["node_config"]["SecurityGroupIds"] == [FAKE_OUTPUTS["security_group_id"]]
    assert config["cluster_name"] == FAKE_OUTPUTS["ray_cluster_name"]
    env = dict(line.split("=", 1) for line in files["service.env"].splitlines())
    assert env["SQS_QUEUE_URL"] == FAKE_OUTPUTS["sqs_queue_url"] and env["S3_IN_BUCKET"] == FAKE_OUTPUTS["s3_in_bucket"]
    Settings(**{k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields})  # valid settings


def test_serve_config_passes_serves_deploy_schema_and_imports():
    from ray.serve.schema import ServeDeploySchema

    files = render.render(FAKE_OUTPUTS, image="x", max_gpu_workers=1, on_demand=False)
    for text in ((CLUSTER / "serve.yaml").read_text(), files["serve.rendered.yaml"]):
        schema = ServeDeploySchema.model_validate(yaml.safe_load(text))
        module, _, attribute = schema.applications[0].import_path.partition(":")
        app = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert isinstance(app, ray.serve.Application)
    rendered = yaml.safe_load(files["serve.rendered.yaml"])
    assert rendered["applications"][0]["runtime_env"]["env_vars"]["S3_OUT_BUCKET"] == FAKE_OUTPUTS["s3_out_bucket"]
    # The config names exactly the application's deployments: ingress, namer (GPU, scales to zero), driver.
    deployments = {d["name"]: d for d in rendered["applications"][0]["deployments"]}
    from renamer_ray.service.ingress import RenamerApi
    from renamer_ray.service.namer import NAMER
    from renamer_ray.service.supervisor import DRIVER

    assert set(deployments) == {RenamerApi.name, NAMER, DRIVER}
    namer = deployments["namer"]
    assert namer["ray_actor_options"]["num_gpus"] == 1 and namer["autoscaling_config"]["min_replicas"] == 0
    assert namer["autoscaling_config"]["max_replicas"] == 1  # --max-gpu-workers
    # Every request is bounded in time, and event streams end (with "reconnect") before the bound cuts them.
    from renamer_ray.service.api.routes.events import EVENTS_MAX_SECONDS

    timeout = rendered["http_options"]["request_timeout_s"]
    assert EVENTS_MAX_SECONDS < timeout == load_settings().request_timeout_seconds


def test_dockerfile_lints_clean_and_pins_this_ray():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(CLUSTER / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    base = re.search(r"^FROM\s+(\S+)", (CLUSTER / "Dockerfile").read_text(), re.M).group(1)
    assert base == f"rayproject/ray:{ray.__version__}-py311-gpu"


def test_admin_cidrs_refuses_the_internet_in_any_disguise(tmp_path):
    """The variable's own validation, evaluated by terraform itself (a module holding just that
    variable needs no provider, so `init` and `plan` run offline)."""
    block = re.search(r'variable "admin_cidrs" \{.*?\n\}\n', (TF / "variables.tf").read_text(), re.S).group(0)
    (tmp_path / "main.tf").write_text(block + 'output "cidrs" {\n  value = var.admin_cidrs\n}\n')
    init = subprocess.run(["terraform", f"-chdir={tmp_path}", "init", "-input=false", "-no-color"],
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr

    def plan(cidrs: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(["terraform", f"-chdir={tmp_path}", "plan", "-input=false", "-no-color",
                               "-var", f"admin_cidrs={json.dumps(cidrs)}"], capture_output=True, text=True, timeout=120)

    for bad in (["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/8"], ["not-a-cidr"], ["203.0.113.7"]):
        result = plan(bad)
        assert result.returncode != 0 and "admin_cidrs must hold" in result.stderr, (bad, result.stdout[-500:])
    for good in ([], ["203.0.113.7/32"], ["198.51.100.0/24", "192.0.2.0/16"]):
        result = plan(good)
        assert result.returncode == 0, (good, result.stdout[-500:], result.stderr[-500:])


def test_only_the_head_may_launch_instances_or_pass_roles():
    """The workers parse untrusted images: their role holds job data permissions only."""
    text = (TF / "iam.tf").read_text()
    autoscaler = re.search(r'resource "aws_iam_role_policy" "head_ray_autoscaler" \{(.*?)\n\}', text, re.S).group(1)
    assert 'aws_iam_role.node["head"]' in autoscaler
    assert re.findall(r'resource "aws_iam_role_policy" "(\w+)"', text) == ["node_s3", "node_sqs", "head_ray_autoscaler"]
    passrole = re.search(r'sid\s+=\s+"PassWorkerRoleToEc2"(.*?)\n  \}', text, re.S).group(1)
    assert 'aws_iam_role.node["worker"].arn' in passrole and '"head"' not in passrole


def test_the_head_may_launch_only_the_worker_instance_types():
    """A stolen head credential cannot start instances of another type: RunInstances on an instance
    carries an ec2:InstanceType condition, from a variable that render.py checks the cluster against."""
    text = (TF / "iam.tf").read_text()
    run_tagged = re.search(r'sid\s+=\s+"RunTaggedInstances"(.*?)\n  \}', text, re.S).group(1)
    assert re.search(r'variable\s+=\s+"ec2:InstanceType"\s+values\s+=\s+var\.worker_instance_types', run_tagged)
    variables = hcl2.loads((TF / "variables.tf").read_text())["variable"]
    block = next(v['"worker_instance_types"'] for v in variables if '"worker_instance_types"' in v)
    default = [kind.strip('"') for kind in block["default"]]
    cluster = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    workers = {n["node_config"]["InstanceType"] for name, n in cluster["available_node_types"].items()
               if name != cluster["head_node_type"]}
    assert workers <= set(default), (workers, default)
    with pytest.raises(SystemExit, match="launches g4dn.xlarge, which the head's role may not start"):
        render.render({**FAKE_OUTPUTS, "worker_instance_types": ["g5.xlarge"]}, image="img", max_gpu_workers=2,
                      on_demand=False)
