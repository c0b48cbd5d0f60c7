"""Run llama.cpp's tokenizer test vectors through a SentencePiece tokenizer.model.

Usage: check_tokenizer.py --tokenizer DIR/hf/tokenizer.model [--vocab llama-spm] [--transformers]

Prints one JSON object (matched/total, the ids of "Once upon a time" with BOS, the
failing cases) and exits 1 if any vector fails. --transformers also checks what
transformers' AutoTokenizer loads from the tokenizer's folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import spm_tokenizer

PROBE = "Once upon a time"


def check(encode, vectors) -> dict:
    mismatches = []
    for text, want in vectors:
        got = encode(text)
        if got != want:
            mismatches.append({"text": text, "expected": want, "got": got})
    matched = len(vectors) - len(mismatches)
    return {"matched": matched, "total": len(vectors), "summary": f"{matched}/{len(vectors)} matched",
            "mismatches": mismatches}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="tokenizer.model file")
    parser.add_argument("--vocab", default="llama-spm", choices=sorted(spm_tokenizer.VOCABS),
                        help="llama.cpp vocab whose .inp/.out vectors to run")
    parser.add_argument("--transformers", action="store_true",
                        help="also check transformers' AutoTokenizer for the tokenizer's folder")
    args = parser.parse_args(argv)

    vectors = spm_tokenizer.read_vectors(spm_tokenizer.vocab_path(args.vocab))
    processor = spm_tokenizer.load_processor(args.tokenizer)
    report = {"tokenizer": str(args.tokenizer), "vectors": f"{args.vocab}.gguf.inp/.out",
              **check(processor.encode, vectors),
              "once_upon_a_time": processor.encode(PROBE, add_bos=True)}
    ok = report["matched"] == report["total"]
    if args.transformers:
        from transformers import AutoTokenizer

        loaded = AutoTokenizer.from_pretrained(str(args.tokenizer.parent))
        hf = check(lambda text: loaded.encode(text, add_special_tokens=False), vectors)
        hf["class"] = type(loaded).__name__
        hf["once_upon_a_time"] = loaded.encode(PROBE)
        report["transformers"] = hf
        ok = ok and hf["matched"] == hf["total"]
    print(json.dumps(report, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
