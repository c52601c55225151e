"""How a bulk run's model actors are placed on GPUs: a fixed pool unless autoscaling is asked for."""

from __future__ import annotations

from renamer_ray.config import load_settings
from renamer_ray.pipeline.infer import ModelPool


def test_a_gpu_pool_is_fixed_unless_max_model_actors_asks_for_autoscaling(ray_local):
    fixed, _ = ModelPool(load_settings(model_device="cuda")).placement()
    assert (fixed["compute"].min_size, fixed["compute"].max_size, fixed["num_gpus"]) == (1, 1, 1)
    assert fixed["num_cpus"] == 1, "a CPU of its own beside the GPU"
    compute = fixed["compute"]
    assert (compute.max_concurrent_calls_per_actor, compute.enable_true_multi_threading) == (2, True), (
        "two batches per actor: one prepared while the other is on the GPU")
    chosen, _ = ModelPool(load_settings(model_device="cuda", max_model_actors=8), pool_size=3).placement()
    assert (chosen["compute"].min_size, chosen["compute"].max_size) == (3, 3), "--workers fixes the pool"
    growing, _ = ModelPool(load_settings(model_device="cuda", max_model_actors=8)).placement()
    assert (growing["compute"].min_size, growing["compute"].max_size) == (1, 8)


def test_gpu_actors_take_64_rows_unless_batch_size_is_set(ray_local, monkeypatch):
    assert ModelPool(load_settings(model_device="cuda")).rows_per_batch == 64, "cut by the namer to the card"
    assert ModelPool(load_settings(model_device="cuda", batch_size=16)).rows_per_batch == 16
    monkeypatch.setenv("BATCH_SIZE", "24")
    assert ModelPool(load_settings(model_device="cuda")).rows_per_batch == 24, "BATCH_SIZE from the environment"
    monkeypatch.delenv("BATCH_SIZE")
    assert ModelPool(load_settings(model_device="cpu")).rows_per_batch == 12, "CPU actors: BATCH_SIZE's default"


def test_decode_takes_a_whole_cpu_beside_gpu_actors_and_half_beside_cpu_ones(ray_local):
    from renamer_ray.pipeline.decode import Decode
    from renamer_ray.pipeline.resume import ReadClaims
    from renamer_ray.pipeline.build import stages

    for device, cpus in (("cuda", 1.0), ("cpu", 0.5)):
        readers = [s for s in stages(load_settings(model_device=device)) if isinstance(s, (Decode, ReadClaims))]
        assert [s.map_args()["num_cpus"] for s in readers] == [cpus, cpus], device
