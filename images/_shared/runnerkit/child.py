"""A native engine in a child process, spoken to by the line protocol (docs/contract.md, "Native runners").

The kit writes requests to the child's stdin, one JSON object a line (``{"op": ..., ...}``);
every line the child writes for the kit starts with ``@orchestrate `` and holds one JSON
object with an ``event`` (the op it answers, or ``error`` with the reason); any other stdout
line is the engine's own output and goes to the log. The child's stderr is the CELL's log.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable

PREFIX = "@orchestrate "


class ChildError(RuntimeError):
    """The child ended, spoke out of turn, or reported an error."""


def parse(line: str) -> dict | None:
    """The event a line carries, or None for a line of the engine's own output."""
    if not line.startswith(PREFIX):
        return None
    event = json.loads(line[len(PREFIX):])
    if not isinstance(event, dict) or "event" not in event:
        raise ChildError(f"the engine's runner sent an event without a kind: {line.strip()[:200]}")
    return event


def describe_status(status: int) -> str:
    """An exit status as words: a negative one names the signal that ended the process."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"


class Child:
    """The running child: send requests, read its events in order, collect its exit."""

    def __init__(self, command: list[str], log: Callable[[str], None], name: str = "engine") -> None:
        self.log, self.name = log, name
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                            encoding="utf-8", errors="replace", bufsize=1)
        except OSError as exc:
            raise ChildError(f"cannot start the {name} runner {command[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        return self.process.pid

    def expect(self, kind: str) -> dict:
        """The next event, which must be of this kind (an ``error`` event raises with its reason)."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise ChildError(f"the {self.name} runner ended ({describe_status(self.process.wait())}) before "
                                 f"'{kind}'; its reason is in the lines above")
            event = parse(line)
            if event is None:
                self.log(f"{self.name}: {line.rstrip()}")
                continue
            if event["event"] == "error" and kind != "error":
                raise ChildError(f"{self.name}: {event.get('error', 'an error without a reason')}")
            if event["event"] != kind:
                raise ChildError(f"the {self.name} runner sent {event['event']!r}, expected {kind!r}")
            return event

    def send(self, line: str) -> None:
        """One line to the child's stdin."""
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError as exc:
            raise ChildError(f"the {self.name} runner ended ({describe_status(self.process.wait())}) "
                             f"before it read a request") from exc

    def request(self, op: str, **fields) -> dict:
        """Send ``{"op": op, **fields}`` and return its answer (the event named ``op``)."""
        self.send(json.dumps({"op": op, **fields}))
        return self.expect(op)

    def go(self) -> None:
        """Release a child that waits for a line (the event-stream form: SmallMind's C# runner)."""
        self.send("go")

    def finish(self, timeout_s: float = 60.0) -> None:
        """Wait for a clean exit."""
        self.process.stdin.close()
        status = self.process.wait(timeout=timeout_s)
        if status != 0:
            raise ChildError(f"the {self.name} runner exited with {describe_status(status)}")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
