"""Tokenize an evaluation text with a model's Hugging Face tokenizer, once, for every engine.

No special tokens are added (no BOS): perplexity scores the text's own ids
(docs/contract.md). Writes {"text", "tokenizer", "ids"} as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenizer", required=True, type=Path, help="the model's tokenizer.json")
    parser.add_argument("--text", required=True, type=Path)
    parser.add_argument("--id", required=True, help="the text's catalogue id")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(str(args.tokenizer))
    ids = tokenizer.encode(args.text.read_text(encoding="utf-8"), add_special_tokens=False).ids
    digest = hashlib.sha256(args.tokenizer.read_bytes()).hexdigest()
    document = {"text": args.id, "tokenizer": f"tokenizer.json sha256 {digest}", "ids": ids}
    args.out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"tokenize_text: {args.id}: {len(ids)} ids", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
