"""Run llama.cpp's tokenizer test vectors through a made tokenizer.

Usage: check_tokenizer.py --tokenizer DIR/hf/tokenizer.model [--vocab llama-spm] [--transformers]
       check_tokenizer.py --tokenizer DIR/hf/tokenizer.json --vocab starcoder-bpe [--transformers]

A SentencePiece tokenizer.model for llama-spm; a Hugging Face tokenizer.json (run by the
`tokenizers` library) for the byte-level BPE vocabularies, which also reports the
pre-tokenizer name llama.cpp's convert_hf_to_gguf.py derives from it (chkhsh). Prints one
JSON object (matched/total, the ids of "Once upon a time" with the tokenizer's own special
tokens -- BOS for llama-spm, none for starcoder-bpe --, the failing cases) and exits 1 if
any vector fails (or the pre-tokenizer is not recognised). --transformers also checks
what transformers' AutoTokenizer loads from the tokenizer's folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bpe_tokenizer
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
    parser.add_argument("--tokenizer", type=Path, required=True,
                        help="tokenizer.model (llama-spm) or tokenizer.json (BPE vocabularies)")
    parser.add_argument("--vocab", default="llama-spm",
                        choices=sorted({**spm_tokenizer.VOCABS, **bpe_tokenizer.VOCABS}),
                        help="llama.cpp vocab whose .inp/.out vectors to run")
    parser.add_argument("--transformers", action="store_true",
                        help="also check transformers' AutoTokenizer for the tokenizer's folder")
    args = parser.parse_args(argv)

    if args.vocab in bpe_tokenizer.VOCABS:
        from tokenizers import Tokenizer

        vocab_file = bpe_tokenizer.vocab_path(args.vocab)
        raw = Tokenizer.from_file(str(args.tokenizer))
        vectors = spm_tokenizer.read_vectors(vocab_file)
        want_pre = bpe_tokenizer.read_vocab(vocab_file).pre
        pre, chkhsh = bpe_tokenizer.converter_pre_name(lambda text: raw.encode(text).ids)
        report = {"tokenizer": str(args.tokenizer), "vectors": f"{vocab_file.name}.inp/.out",
                  **check(lambda text: raw.encode(text, add_special_tokens=False).ids, vectors),
                  "once_upon_a_time": raw.encode(PROBE).ids,
                  "converter_pre_tokenizer": pre, "expected_pre_tokenizer": want_pre, "chkhsh": chkhsh}
        ok = report["matched"] == report["total"] and pre == want_pre
    else:
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
        if args.vocab in bpe_tokenizer.VOCABS:
            hf["converter_pre_tokenizer"], hf["chkhsh"] = bpe_tokenizer.converter_pre_name(loaded.encode)
            ok = ok and hf["converter_pre_tokenizer"] == report["expected_pre_tokenizer"]
    print(json.dumps(report, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
