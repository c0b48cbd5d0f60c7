"""Make an evaluation text from Debian's bible-kjv packages (catalogue/texts.yaml).

The packages are unpacked with dpkg-deb into /tmp, the verses are printed by the package's
own `bible` program (it decodes its compressed data file), and the output is normalised:
the chapter heading dropped, each verse's number removed, its wrapped lines joined, runs of
whitespace collapsed, verses joined by one space, one final newline. The orchestrator
checks the result's sha256 against the catalogue.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSE = re.compile(r"^(\d+) (.*)$")


def normalise(printed: str) -> str:
    """The verses of `bible`'s output as one line of text."""
    verses: list[str] = []
    for line in printed.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = VERSE.match(stripped)
        if match:
            verses.append(match.group(2))
        elif verses:  # a wrapped line of the verse before
            verses[-1] += " " + stripped
        # else: the chapter heading (for example "Genesis 1")
    if not verses:
        raise SystemExit("make_text: the bible program printed no verse")
    return " ".join(" ".join(v.split()) for v in verses) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deb", action="append", required=True, help="a .deb to unpack (repeatable)")
    parser.add_argument("--verses", required=True, help="what to print, e.g. Gen1:1-31")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    # Unpacked beside the output: the tool container's /tmp is mounted noexec.
    root = Path(tempfile.mkdtemp(prefix=".unpacked-", dir=args.out.parent))
    try:
        text = decode(args.deb, root, args.verses)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"make_text: {args.verses}: {len(text.encode())} bytes", file=sys.stderr)
    return 0


def decode(debs: list[str], root: Path, verses: str) -> str:
    """The verses printed by the unpacked packages' own program, normalised."""
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    program = root / "usr" / "bin" / "bible"
    data = next(root.rglob("bible.data"), None)
    if not program.is_file() or data is None:
        raise SystemExit(f"make_text: the packages hold no usr/bin/bible or bible.data ({debs})")
    printed = subprocess.run([str(program), "-p", str(data.parent), verses], check=True, capture_output=True,
                             env={**os.environ, "COLUMNS": "80"}, text=True, encoding="utf-8").stdout
    return normalise(printed)


if __name__ == "__main__":
    sys.exit(main())
