"""Text from other people's files, made harmless where it lands: a terminal, a spreadsheet.

A label, reason, member name or option key may hold escape sequences (clear the screen,
set the window title, hide text) or begin with '=', '+', '-' or '@', which a spreadsheet
reads as a formula. ``escape`` turns every control character but newline and tab into a
visible ``\\xNN`` / ``\\uNNNN``; ``SafeStream`` does that to everything the command line
prints; ``cell`` prefixes a CSV field that a spreadsheet would evaluate with a quote
(OWASP's advice for CSV injection).
"""

from __future__ import annotations

import re
from typing import TextIO

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that
# reorder what a terminal shows (U+202A-U+202E, U+2066-U+2069).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character but newline and tab shown as an escape."""
    return _CONTROL.sub(_visible, text)


def cell(value: str) -> str:
    """A CSV field that no spreadsheet evaluates: a leading formula character gets a quote before it."""
    return "'" + value if value.startswith(FORMULA_START) else value


class SafeStream:
    """A text stream that escapes control characters in everything written to it (``sys.stdout``/``stderr``)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        safe = escape(text)
        try:
            self.stream.write(safe)
        except UnicodeEncodeError:  # a terminal in an ASCII locale: non-ASCII letters as escapes, not a crash
            encoding = getattr(self.stream, "encoding", None) or "ascii"
            self.stream.write(safe.encode(encoding, "backslashreplace").decode(encoding))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)
