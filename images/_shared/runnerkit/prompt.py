"""Prompt shaping (contract step 2) and the context check every runner makes."""

from __future__ import annotations

from collections.abc import Callable

from runnerkit.job import JobError


def shape(encode: Callable[[str], list[int]], text: str, prompt_tokens: int | None) -> tuple[list[int], int]:
    """(ids, times the text was repeated): with prompt_tokens set, the text repeated (joined by
    a space) until it tokenizes to at least that many ids, cut to exactly prompt_tokens."""
    ids = list(encode(text))
    repeats = 1
    if prompt_tokens is not None:
        while len(ids) < prompt_tokens:
            repeats += 1
            longer = list(encode(" ".join([text] * repeats)))
            if len(longer) <= len(ids):
                raise JobError(f"the prompt does not grow when repeated ({len(ids)} tokens)")
            ids = longer
        ids = ids[:prompt_tokens]
    if not ids:
        raise JobError("the prompt tokenizes to no ids")
    return ids, repeats


def check_context(prompt_tokens: int, gen_tokens: int, context_length: int | None) -> None:
    """Refuse a CELL whose prompt and generated tokens do not fit the model's context."""
    if context_length and prompt_tokens + gen_tokens > context_length:
        raise JobError(f"prompt ({prompt_tokens}) + gen_tokens ({gen_tokens}) = {prompt_tokens + gen_tokens} "
                       f"tokens exceed the model's context length ({context_length})")


def with_hf_tokenizer(model_path: str, tokenizer_path: str | None, text: str, prompt_tokens: int | None):
    """(tokenizer, its path, prompt ids, repeats) for runners of a GGUF model that tokenize with the
    Hugging Face tokenizer.json next to it (``<model folder>/hf/tokenizer.json`` unless the job names one)."""
    from pathlib import Path

    import tokenizers

    if not Path(model_path).is_file():
        raise JobError(f"model file {model_path} not found")
    path = tokenizer_path or str(Path(model_path).parent.parent / "hf" / "tokenizer.json")
    tokenizer = tokenizers.Tokenizer.from_file(path)
    ids, repeats = shape(lambda piece: tokenizer.encode(piece, add_special_tokens=True).ids, text, prompt_tokens)
    return tokenizer, path, ids, repeats
