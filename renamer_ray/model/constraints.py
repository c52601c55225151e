"""Constrained decoding: the model can only write a kebab-case name within the length rules.

A ``LogitsProcessor`` that, at every step and for every row of the batch, masks out each token
that would break the rules if appended: any character outside ``[a-z0-9-]``, a leading hyphen,
a double hyphen, more than ``max_chars`` characters or more than ``max_words`` words, and a
trailing hyphen (the end token right after a hyphen, or a token ending with a hyphen where no
character fits after it). When no token fits, only the end token remains, so names stop at a word
boundary instead of being sliced afterwards. All bookkeeping is vectorised over the vocabulary.

:class:`FiniteRows` guards half-precision generation: it notes, on the device, which rows' scores
stopped being finite (an fp16 overflow), so that those images can be named again in fp32.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from transformers import LogitsProcessor

_KEBAB_PIECE = re.compile(r"^[a-z0-9-]+$")


class TokenTable:
    """Per-token facts for a tokenizer: allowed?, length, hyphens, starts/ends with a hyphen."""

    def __init__(self, tokenizer, vocab_size: int):
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        special = set(tokenizer.all_special_ids)
        n = max(vocab_size, len(texts))
        self.allowed = torch.zeros(n, dtype=torch.bool)
        self.length = torch.zeros(n, dtype=torch.long)
        self.hyphens = torch.zeros(n, dtype=torch.long)
        self.starts_hyphen = torch.zeros(n, dtype=torch.bool)
        self.ends_hyphen = torch.zeros(n, dtype=torch.bool)
        for i, text in enumerate(texts):
            if i in special or not _KEBAB_PIECE.match(text) or "--" in text:
                continue
            self.allowed[i] = True
            self.length[i] = len(text)
            self.hyphens[i] = text.count("-")
            self.starts_hyphen[i] = text.startswith("-")
            self.ends_hyphen[i] = text.endswith("-")

    def to(self, device) -> "TokenTable":
        for name in ("allowed", "length", "hyphens", "starts_hyphen", "ends_hyphen"):
            setattr(self, name, getattr(self, name).to(device))
        return self


class KebabNameConstraint(LogitsProcessor):
    """Masks tokens that would take a row's generated text outside the naming rules."""

    def __init__(self, table: TokenTable, eos_token_ids: list[int], prompt_length: int,
                 max_chars: int | Sequence[int] = 60, max_words: int | Sequence[int] = 10,
                 free: Sequence[bool] | None = None):
        """``max_chars``/``max_words``: one limit for every row, or one per row (rows of several
        jobs share a model call). ``free``: rows left unconstrained (a name in another language)."""
        device = table.length.device
        self.table = table
        self.eos = torch.tensor(eos_token_ids, dtype=torch.long, device=device)  # no copy per step
        self.prompt_length = prompt_length
        self.max_chars = max_chars if isinstance(max_chars, int) else torch.tensor(max_chars, device=device)[:, None]
        self.max_words = max_words if isinstance(max_words, int) else torch.tensor(max_words, device=device)[:, None]
        self.free = None if free is None or not any(free) else torch.tensor(free, device=device)[:, None]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t = self.table
        generated = input_ids[:, self.prompt_length:]
        vocab = scores.shape[-1]
        if generated.shape[1]:
            chars = t.length[generated].sum(dim=1)
            hyphens = t.hyphens[generated].sum(dim=1)
            ends_hyphen = t.ends_hyphen[generated[:, -1]]
        else:
            chars = torch.zeros(len(input_ids), dtype=torch.long, device=input_ids.device)
            hyphens = torch.zeros_like(chars)
            ends_hyphen = torch.zeros_like(chars, dtype=torch.bool)
        fits = (
            t.allowed[None, :vocab]
            # a token ending with a hyphen needs room for one more character after it
            & (chars[:, None] + t.length[None, :vocab] + t.ends_hyphen[None, :vocab] <= self.max_chars)
            & (hyphens[:, None] + t.hyphens[None, :vocab] <= self.max_words - 1)
            & ~(t.starts_hyphen[None, :vocab] & (ends_hyphen | (chars == 0))[:, None])
        )
        # The end token is allowed once something has been written, never right after a hyphen.
        fits[:, self.eos] = ((chars > 0) & ~ends_hyphen)[:, None]
        if self.free is not None:
            fits |= self.free
        return scores.masked_fill(~fits, float("-inf"))


class FiniteRows(LogitsProcessor):
    """Keeps ``finite``, one flag per row on the device (no host sync per step): False once a row's
    scores held a NaN or +inf (a masked token's -inf, written by other processors, is no overflow)
    while the row was still writing. Such a row's scores are replaced by ones that end it at once
    (the end token first), so that generation goes on harmlessly for the others; its answer is to
    be thrown away and made again in fp32. Put it first: it must see the model's own scores."""

    def __init__(self, rows: int, eos_token_ids: list[int], device):
        self.finite = torch.ones(rows, dtype=torch.bool, device=device)
        self.ended = torch.zeros(rows, dtype=torch.bool, device=device)
        self.eos = torch.tensor(eos_token_ids, dtype=torch.long, device=device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.ended |= torch.isin(input_ids[:, -1], self.eos)  # a finished row's later scores do not matter
        overflow = (scores.isnan() | scores.isposinf()).any(dim=-1)
        self.finite &= ~overflow | self.ended
        stop = torch.zeros_like(scores[:1]).index_fill_(-1, self.eos, 1.0)
        return torch.where(self.finite[:, None], scores, stop)
