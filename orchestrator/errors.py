"""The project's one error root and its subclasses, each carrying the context a user needs."""

from __future__ import annotations

from dataclasses import dataclass


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where it is, what is wrong, what is allowed."""

    file: str
    path: str
    line: int | None
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path or '(top level)'}: {_capped(self.message)}"
        if self.allowed:
            text += f" (allowed: {_capped(self.allowed)})"
        return text


MAX_MESSAGE_CHARS = 500  # of one problem's message: a value quoted in it (a 900 KB option, say) is cut
MAX_PROBLEMS_LISTED = 50


def _capped(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[:MAX_MESSAGE_CHARS]}... [{len(text) - MAX_MESSAGE_CHARS} more characters]"


class InputError(OrchestratorError):
    """A file the user gave is invalid; lists every problem found."""

    exit_code = 2

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        lines = "\n  ".join(str(p) for p in problems[:MAX_PROBLEMS_LISTED])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_LISTED} more" if len(problems) > MAX_PROBLEMS_LISTED else ""
        super().__init__(f"{file} has {len(problems)} problem(s):\n  {lines}{more}")

    def __reduce__(self):
        return type(self), (self.file, self.problems)


class UsageError(OrchestratorError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = 2


class PlacementError(OrchestratorError):
    """A CELL asks for more threads than the machine can give it."""

    exit_code = 2


class CatalogueError(OrchestratorError):
    """A model id, format or catalogue entry is unknown or invalid."""

    exit_code = 2


class DockerError(OrchestratorError):
    """The Docker engine could not be reached or refused an operation."""

    exit_code = 3


class ImageBuildError(OrchestratorError):
    """An IMAGE failed to build; carries the image name and the tail of its build log."""

    exit_code = 3

    def __init__(self, image: str, message: str, log_tail: str = "", log_path: str | None = None):
        self.image = image
        self.message = message
        self.log_tail = log_tail
        self.log_path = log_path
        text = f"building image {image} failed: {message}"
        if log_path:
            text += f"\n  full log: {log_path}"
        if log_tail:
            text += "\n  last lines of the build log:\n    " + "\n    ".join(log_tail.splitlines())
        super().__init__(text)

    def __reduce__(self):
        return type(self), (self.image, self.message, self.log_tail, self.log_path)


class ModelError(OrchestratorError):
    """A model could not be prepared or failed verification."""

    exit_code = 4


class ResultError(OrchestratorError):
    """A RESULT or RUN folder is missing, unreadable or fails its schema."""

    exit_code = 5
