"""Names taken from other people's files, checked before they become paths.

A model folder named in a bundle, a member of an archive, a file named in a model
store's manifest: each is a plain component (letters, digits, '.', '_', '-', '+'; no
'.', '..', separators, control characters or leading dot-dot tricks) or a relative path
made only of such components. Checked by pattern, never by resolving the path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from orchestrator.files.beneath import Refused
from orchestrator.files.terminal import escape

COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")
COMPONENT_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$"  # the same rule, for JSON Schemas
MAX_DEPTH = 16  # folders in one relative path (a bundle needs 5)
SHOWN_CHARS = 80


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` as it may be quoted in a message: control characters escaped, cut to ``limit``."""
    text = escape(str(text))
    return repr(text if len(text) <= limit else text[:limit] + "...")


def is_component(name: str) -> bool:
    """Whether ``name`` is one plain path component (see the module docstring)."""
    return isinstance(name, str) and COMPONENT.fullmatch(name) is not None and name not in (".", "..")


def component(name, what: str, where: str) -> str:
    """``name`` when it is one plain path component, else Refused naming ``what`` and ``where``."""
    if not is_component(name):
        raise Refused(where, f"{what} {shown(name)} is not a plain file or folder name (letters, digits, '.', '_', "
                             "'-', '+'; no '/', no '..')")
    return name


def relative(name: str, max_chars: int, refuse: Callable[[str], Exception]) -> str:
    """``name`` as a relative path of plain components (a leading './' dropped), or ``refuse(reason)``."""
    if len(name) > max_chars:
        raise refuse(f"a member name of {len(name)} characters (at most {max_chars}): {shown(name)}")
    parts = name.split("/")
    while parts and parts[0] == ".":
        parts = parts[1:]
    if not parts or len(parts) > MAX_DEPTH or not all(is_component(p) for p in parts):
        raise refuse(f"the member name {shown(name)} is not a relative path of plain names (absolute, '..', "
                     "empty or odd characters)")
    return "/".join(parts)
