"""Naming rows again in fp32: the model's weights cast in place for the rerun and back after it.

In fp16 (T4: Turing has no bf16) a row whose scores stop being finite (:class:`FiniteRows`: an
overflow in the language model, or in the vision tower, whose non-finite embedding makes that row's
scores non-finite) is named again, alone or with the other overflowed rows of its batch, with the
model in fp32: the weights are cast in place, one tensor at a time, for that rerun and back after it
(:meth:`Fp32Rerun._in_fp32`). No second copy of the weights is kept: for Qwen2-VL-2B (2.2 B
parameters) the rerun peaks at about 8.8 GB of fp32 weights plus one image's fp32 activations (under
1 GB), the batch's own memory being freed first: about 10 GB of a 16 GB T4.
"""

from __future__ import annotations

import gc
import traceback
from contextlib import contextmanager

import torch

from renamer_ray.model.device import DeviceLost


class Fp32Rerun:
    """The namer's part that puts its model in fp32 and back. It uses the namer's ``model``, ``device``,
    ``dtype``, ``_device`` (the lock that holds the model for one batch at a time) and
    ``_loaded_dtypes`` (each floating tensor's dtype at load time, by name: what a rerun restores)."""

    def _floating_tensors(self) -> list[tuple[str, torch.Tensor]]:
        return [(name, t) for name, t in [*self.model.named_parameters(), *self.model.named_buffers()]
                if t.is_floating_point()]

    def _cast(self, to: torch.dtype | None) -> None:
        """Every floating tensor of the model to ``to``, or back to the dtype it was loaded in (None):
        in place, one tensor at a time, so that no second copy of the weights is ever held."""
        for name, t in self._floating_tensors():
            t.data = t.data.to(to or self._loaded_dtypes[name])

    @contextmanager
    def _in_fp32(self):
        """The model in fp32 for the block, and back in its own dtypes on every path (a failed cast
        too: an OOM halfway would leave it half fp32 for every later batch). Where even that fails,
        the model is unusable: :class:`DeviceLost`, so that Ray replaces the process."""
        with self._device:
            try:
                self._release_memory()
                self._cast(torch.float32)
                yield
            except BaseException as exc:
                traceback.clear_frames(exc.__traceback__)  # the failed call's tensors go before the restore
                raise
            finally:
                try:
                    self._release_memory()
                    self._cast(None)
                except Exception as exc:
                    raise DeviceLost(f"the model could not be put back in {self.dtype} after an fp32 rerun "
                                     f"({exc})") from exc

    def _release_memory(self) -> None:
        """Return what freed tensors left in the CUDA cache (what Python still holds in cycles first)."""
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
