"""How ``generate`` decodes on a GPU: the KV cache it uses, and a stop check that does not make
the host wait for the device at every token (no model here).

transformers' greedy loop asks, after every token, whether all rows have ended
(``unfinished_sequences.max() == 0`` read on the host): on a GPU that is a host sync per token, and
the host cannot queue the next step meanwhile. transformers 5 has the cure, ``DeferredStopCheck``
(the flag copied asynchronously and read one step late, the extra step undone), but turns it on for
Apple's ``mps`` only; :func:`defer_stop_checks` turns it on for CUDA too, with the library's own
conditions on the cache. A static cache (opt-in: MODEL_STATIC_CACHE) lets transformers compile the
decode step.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

STATIC_CACHE_STEP = 256  # a static cache's length is a multiple of this: similar prompts share one compiled graph


def cache_options(static: bool, prompt_length: int, max_new_tokens: int, compile_decode: bool) -> dict:
    """``generate``'s cache arguments: transformers' dynamic cache, or a static one whose decode step
    transformers compiles unless ``compile_decode`` is False (Turing and older, where this path is
    untried, and the CPU)."""
    if not static:
        return {}
    length = -(-(prompt_length + max_new_tokens) // STATIC_CACHE_STEP) * STATIC_CACHE_STEP
    return dict(cache_implementation="static", max_cache_len=length, disable_compile=not compile_decode)


def deferring(library_is_supported, device_types: tuple[str, ...] = ("cuda",)):
    """``DeferredStopCheck.is_supported`` that also says yes on ``device_types``, under the library's
    own conditions: not for an assistant model, and a cache handed back to the caller must be
    croppable (the extra step is undone in it)."""

    def is_supported(device, cache, cache_is_returned: bool, is_assistant: bool) -> bool:
        if device.type in device_types and not is_assistant:
            return cache is None or not cache_is_returned or cache.is_croppable
        return library_is_supported(device, cache, cache_is_returned, is_assistant)

    is_supported.defers_on, is_supported.library = device_types, library_is_supported
    return is_supported


def defer_stop_checks() -> bool:
    """Let transformers' greedy loop check for its end one step late on CUDA (once per process).
    False, with a warning, where this transformers has no ``DeferredStopCheck``: it then decodes
    as before, with a host sync per token."""
    try:
        from transformers.generation.utils import DeferredStopCheck
    except ImportError:
        log.warning("this transformers has no DeferredStopCheck: decoding waits for the GPU at every token")
        return False
    if not hasattr(DeferredStopCheck.is_supported, "defers_on"):
        DeferredStopCheck.is_supported = staticmethod(deferring(DeferredStopCheck.is_supported))
    return True
