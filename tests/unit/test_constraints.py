"""Constrained decoding keeps any model's output inside the naming rules by construction."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from renamer_ray.model.constraints import KebabNameConstraint, TokenTable
from renamer_ray.model.checkpoint import resolve_checkpoint
from renamer_ray.naming import is_valid_stem

TOKENIZER = AutoTokenizer.from_pretrained(resolve_checkpoint("toy-shapes"))
VOCAB = len(TOKENIZER)
TABLE = TokenTable(TOKENIZER, VOCAB)
EOS = TOKENIZER.convert_tokens_to_ids("<|im_end|>")


def greedy(seed: int, rows: int, steps: int, max_chars: int = 60, max_words: int = 10) -> list[str]:
    """Greedy decoding over random logits (a model that wants to write anything at all)."""
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.zeros((rows, 3), dtype=torch.long)
    ids = prompt
    constraint = KebabNameConstraint(TABLE, [EOS], prompt.shape[1], max_chars=max_chars, max_words=max_words)
    done = torch.zeros(rows, dtype=torch.bool)
    for _ in range(steps):
        scores = torch.randn((rows, VOCAB), generator=gen)
        scores[:, EOS] -= 3.0  # a model reluctant to stop
        nxt = constraint(ids, scores).argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, TOKENIZER.pad_token_id), nxt)
        done |= nxt == EOS
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return [TOKENIZER.decode(row[prompt.shape[1]:], skip_special_tokens=True) for row in ids]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_any_logits_give_a_valid_name(seed):
    for text in greedy(seed, rows=8, steps=80):
        assert text, "never an empty name"
        assert is_valid_stem(text), text
        assert len(text) <= 60 and text.count("-") <= 9
        assert "--" not in text and not text.startswith("-")


def test_budget_stops_generation_at_a_word_boundary():
    # A tight budget: the name must stop whole, and the end token is forced once nothing fits.
    for text in greedy(7, rows=16, steps=40, max_chars=12, max_words=3):
        assert len(text) <= 12 and text.count("-") <= 2


def test_table_rejects_tokens_outside_kebab_case():
    for token_id in range(VOCAB):
        text = TOKENIZER.decode([token_id])
        if TABLE.allowed[token_id]:
            assert all(c.islower() or c.isdigit() or c == "-" for c in text) and " " not in text
        elif text and all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in text):
            assert token_id in TOKENIZER.all_special_ids


def allowed(generated: list[int], max_chars: int = 60, max_words: int = 10) -> torch.Tensor:
    """Which tokens the constraint lets a row write after ``generated``."""
    prompt = [TOKENIZER.pad_token_id] * 3
    constraint = KebabNameConstraint(TABLE, [EOS], len(prompt), max_chars=max_chars, max_words=max_words)
    return constraint(torch.tensor([prompt + generated]), torch.zeros(1, VOCAB))[0] > float("-inf")


def test_a_name_never_ends_with_a_hyphen():
    red, hyphen = TOKENIZER.convert_tokens_to_ids("red"), TOKENIZER.convert_tokens_to_ids("-")
    assert allowed([red])[EOS] and allowed([red])[hyphen]
    assert not allowed([red, hyphen])[EOS], "no end token right after a hyphen"
    assert allowed([red, hyphen])[red]
    assert allowed([red], max_chars=5)[hyphen], "red- leaves room for one more character"
    assert not allowed([red], max_chars=4)[hyphen], "red- at the limit could only end there"
