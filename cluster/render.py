"""Fill the cluster and Serve configs from Terraform's outputs — no ARNs copied by hand.

    python cluster/render.py --image <account>.dkr.ecr.<region>.amazonaws.com/renamer-ray:0.1.0 \\
        [--outputs outputs.json] [--max-gpu-workers 4] [--on-demand]

Reads ``terraform -chdir=terraform output -json`` (or ``--outputs FILE``, that command's output saved)
and writes, next to this file:
- ``aws.rendered.yaml``  for ``ray up``: every ``FROM_TERRAFORM:<output>`` replaced by that output;
- ``service.env``        the service's variables (S3_IN_BUCKET, S3_OUT_BUCKET, SQS_QUEUE_URL, …), mounted
                         into the containers;
- ``serve.rendered.yaml`` for ``serve deploy`` (ingress, namer, driver), with the same variables in its
                         runtime_env and the namer's max_replicas = --max-gpu-workers;
- ``driver-runtime-env.yaml`` for ``ray job submit --runtime-env`` (bulk runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MARK = "FROM_TERRAFORM:"
# Terraform output → the service's environment variable (see renamer_ray/config/settings.py).
SERVICE_ENV = {"aws_region": "AWS_REGION", "s3_in_bucket": "S3_IN_BUCKET", "s3_out_bucket": "S3_OUT_BUCKET",
               "sqs_queue_url": "SQS_QUEUE_URL"}
FIXED_ENV = {"API_PORT": "8000", "MODEL_ID": "Qwen/Qwen2-VL-2B-Instruct", "MODEL_DEVICE": "cuda",
             "NAMER_MIN_REPLICAS": "0"}


def terraform_outputs(path: Path | None) -> dict:
    text = path.read_text() if path else subprocess.run(
        ["terraform", f"-chdir={HERE.parent / 'terraform'}", "output", "-json"],
        check=True, capture_output=True, text=True).stdout
    return {name: entry["value"] for name, entry in json.loads(text).items()}


def fill(node, outputs: dict):
    """Replace every ``FROM_TERRAFORM:<name>`` string (anywhere in the tree) by that output."""
    if isinstance(node, dict):
        return {k: fill(v, outputs) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, outputs) for v in node]
    if isinstance(node, str) and node.startswith(MARK):
        name = node[len(MARK):]
        if name not in outputs:
            raise SystemExit(f"terraform has no output {name!r} (outputs: {', '.join(sorted(outputs))})")
        return outputs[name]
    return node


def render(outputs: dict, *, image: str, max_gpu_workers: int, on_demand: bool) -> dict[str, str]:
    cluster = fill(yaml.safe_load((HERE / "aws.yaml").read_text()), outputs)
    cluster["docker"]["image"] = image
    cluster["max_workers"] = cluster["available_node_types"]["gpu"]["max_workers"] = max_gpu_workers
    if on_demand:
        del cluster["available_node_types"]["gpu"]["node_config"]["InstanceMarketOptions"]
    allowed = outputs.get("worker_instance_types", [])
    for name, node in cluster["available_node_types"].items():
        kind = node["node_config"]["InstanceType"]
        if name != cluster["head_node_type"] and kind not in allowed:
            raise SystemExit(f"node type {name!r} launches {kind}, which the head's role may not start "
                             f"(terraform's worker_instance_types: {', '.join(allowed) or 'none'}): add it there "
                             "and apply, or change cluster/aws.yaml")
    env = {**FIXED_ENV, **{var: str(outputs[name]) for name, var in SERVICE_ENV.items()},
           "NAMER_MAX_REPLICAS": str(max_gpu_workers),  # the service's namer: one replica per GPU node
           "MAX_MODEL_ACTORS": str(max_gpu_workers)}  # bulk runs ask the autoscaler for up to this many GPU nodes
    serve = yaml.safe_load((HERE / "serve.yaml").read_text())
    serve["applications"][0]["runtime_env"]["env_vars"] = env
    namer = next(d for d in serve["applications"][0]["deployments"] if d["name"] == "namer")
    namer["autoscaling_config"]["max_replicas"] = max_gpu_workers
    return {"aws.rendered.yaml": yaml.safe_dump(cluster, sort_keys=False),
            "serve.rendered.yaml": yaml.safe_dump(serve, sort_keys=False),
            "service.env": "".join(f"{k}={v}\n" for k, v in env.items()),
            "driver-runtime-env.yaml": yaml.safe_dump({"env_vars": env}, sort_keys=False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="the node image built from cluster/Dockerfile")
    parser.add_argument("--outputs", type=Path, help="saved `terraform output -json` (default: run it)")
    parser.add_argument("--max-gpu-workers", type=int, default=4)
    parser.add_argument("--on-demand", action="store_true", help="on-demand GPU workers instead of spot")
    args = parser.parse_args()
    files = render(terraform_outputs(args.outputs), image=args.image, max_gpu_workers=args.max_gpu_workers,
                   on_demand=args.on_demand)
    for name, text in files.items():
        (HERE / name).write_text(text)
        print(f"wrote cluster/{name}")


if __name__ == "__main__":
    main()
