"""Greedy-decode a made model with transformers: a sanity check that it is not degenerate.

Usage: greedy.py --hf DIR/hf --prompt "Once upon a time" --n 64 [--min-distinct K]

Plain argmax for exactly N tokens with the KV cache (EOS does not stop it, nothing is
masked), so the ids can be compared token for token with other engines. Prints one JSON
object and exits 1 when fewer than K distinct tokens came out (default N/4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def greedy(hf_dir: Path, prompt: str, n: int) -> tuple[list[int], list[int], str]:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = LlamaForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    prompt_ids = tokenizer.encode(prompt)  # with BOS, as the tokenizer config says
    generated: list[int] = []
    with torch.inference_mode():
        inputs = torch.tensor([prompt_ids])
        past = None
        for _ in range(n):
            out = model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = int(torch.argmax(out.logits[0, -1]))
            generated.append(token)
            inputs = torch.tensor([[token]])
    return prompt_ids, generated, tokenizer.decode(generated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf", type=Path, required=True, help="Hugging Face model folder")
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--n", type=int, default=64, help="tokens to generate")
    parser.add_argument("--min-distinct", type=int, default=None,
                        help="fail below this many distinct tokens (default: n/4, at least 2)")
    args = parser.parse_args(argv)
    if args.n <= 0:
        parser.error("--n must be positive")
    min_distinct = args.min_distinct if args.min_distinct is not None else max(2, args.n // 4)

    prompt_ids, generated, text = greedy(args.hf, args.prompt, args.n)
    distinct = len(set(generated))
    print(json.dumps({"prompt": args.prompt, "prompt_ids": prompt_ids, "n": args.n,
                      "generated": generated, "distinct": distinct, "min_distinct": min_distinct,
                      "text": text}, ensure_ascii=False))
    return 0 if distinct >= min_distinct else 1


if __name__ == "__main__":
    sys.exit(main())
