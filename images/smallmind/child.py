"""The C# runner (runner/Program.cs) as a child process: its event lines, its handshakes, its end.

Every line the C# runner writes for us starts with ``@orchestrate `` and holds one JSON
object; any other stdout line is SmallMind's own console output, passed to the log.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

PREFIX = "@orchestrate "


class ChildError(RuntimeError):
    """The C# runner ended or spoke out of turn."""


def parse(line: str) -> dict | None:
    """The event a line carries, or None for a line of SmallMind's own output."""
    if not line.startswith(PREFIX):
        return None
    event = json.loads(line[len(PREFIX):])
    if not isinstance(event, dict) or "event" not in event:
        raise ChildError(f"the SmallMind runner sent an event without a kind: {line.strip()[:200]}")
    return event


class Child:
    """The running C# runner: read its events in order, answer its waits, collect its exit."""

    def __init__(self, command: list[str], log: Callable[[str], None]) -> None:
        self.log = log
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        bufsize=1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def expect(self, kind: str) -> dict:
        """The next event, which must be of this kind."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise ChildError(f"the SmallMind runner ended (status {self.process.wait()}) before '{kind}'; "
                                 "its reason is in the lines above")
            event = parse(line)
            if event is None:
                self.log(f"smallmind: {line.rstrip()}")
                continue
            if event["event"] != kind:
                raise ChildError(f"the SmallMind runner sent {event['event']!r}, expected {kind!r}")
            return event

    def go(self) -> None:
        """Release the runner from its wait before or after the timed repetitions."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self, timeout_s: float = 60.0) -> None:
        """Wait for a clean exit."""
        status = self.process.wait(timeout=timeout_s)
        if status != 0:
            raise ChildError(f"the SmallMind runner exited with status {status}")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
