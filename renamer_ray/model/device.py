"""Which device the model runs on, and the device errors it cannot survive (no model here).

A GPU that was meant but does not work fails at once, in one sentence with torch's reason, instead
of naming at CPU speed; ``MODEL_DEVICE=cpu`` is the explicit way to the CPU.
"""

from __future__ import annotations

import sys

import torch

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class DeviceUnavailable(RuntimeError):
    """The model was meant to run on a GPU that this process cannot use."""


class DeviceLost(RuntimeError):
    """The accelerator is in a state no later call can recover from (a CUDA error): the process
    holding the model must end so that Ray replaces it (ray#59522)."""


# Words of errors after which a CUDA context is unusable for the rest of the process's life.
_FATAL_DEVICE_ERRORS = ("CUDA error", "device-side assert", "CUBLAS_STATUS_", "CUDNN_STATUS_", "illegal memory access")


def is_fatal_device_error(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError) and any(
        words in str(exc) for words in _FATAL_DEVICE_ERRORS)


def cuda_problem() -> str | None:
    """Why this process cannot use CUDA, in torch's own words (no driver, a broken one, no visible
    device, a CPU-only build), or None where it can (CUDA is then initialised)."""
    try:
        torch.cuda.init()
    except Exception as exc:  # RuntimeError, or AssertionError from a CPU-only build
        return str(exc).strip() or type(exc).__name__
    return None


def require_cuda(why: str = "CUDA was asked for") -> None:
    """Raise :class:`DeviceUnavailable`, one sentence with ``why`` and torch's reason, unless CUDA works."""
    if problem := cuda_problem():
        raise DeviceUnavailable(f"{why}, but CUDA is not usable here ({problem}); set MODEL_DEVICE=cpu "
                                "to name on the CPU")


def ray_gpu_ids() -> list:
    """The GPUs Ray gave this process: empty outside a Ray worker (a driver, or no Ray at all)."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; a process without Ray need not
    if ray is None or not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return []
    return ray.get_gpu_ids()


def choose_device(requested: str = "auto") -> str:
    """``auto``: the GPU where CUDA works, else the CPU. Where a GPU is meant (``cuda``, or ``auto``
    in an actor Ray gave a GPU) but CUDA does not work, fail at once (:func:`require_cuda`) instead
    of naming at CPU speed; ``cpu`` is the explicit way to run on the CPU."""
    if requested == "auto" and (gpus := ray_gpu_ids()):
        require_cuda(f"Ray gave this process GPU {', '.join(map(str, gpus))}")
        return "cuda"
    if requested.startswith("cuda"):
        require_cuda(f"the model was asked to run on {requested}")
        return requested
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_dtype(device: str, requested: str = "auto") -> torch.dtype:
    """bf16 where the GPU supports it, fp16 on older GPUs (T4: Turing has no bf16), fp32 on CPU."""
    if requested != "auto":
        return _DTYPES[requested]
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def is_turing_or_older(device: str) -> bool:
    """A GPU without bf16 (T4 and older): fp16, and no compiled decode step."""
    return device.startswith("cuda") and not torch.cuda.is_bf16_supported(including_emulation=False)
