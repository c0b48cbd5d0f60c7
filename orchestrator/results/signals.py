"""Exit statuses in plain words: what a runner's exit code says happened, and what to do."""

from __future__ import annotations

import signal

# Docker reports a container whose main process died of signal N as exit status 128 + N.
SIGNAL_BASE = 128

# What each signal most likely means for a benchmark runner, and what to do about it.
_MEANING = {
    signal.SIGILL: ("illegal instruction",
                    "this image's machine code does not run on this CPU (was it built natively for another "
                    "CPU model?): use the portable build (the default for llama.cpp and candle), or remove "
                    "the image and build it on this machine"),
    signal.SIGSEGV: ("segmentation fault",
                     "the engine crashed reading or writing memory it does not own: see the cell's runner.log"),
    signal.SIGBUS: ("bus error",
                    "often a model file truncated or changed while it was mapped, or a full /dev/shm: "
                    "check the model with `orchestrate models verify` and see the cell's runner.log"),
    signal.SIGABRT: ("aborted",
                     "the engine stopped itself on a failed assertion or an uncaught exception: see the "
                     "cell's runner.log"),
    signal.SIGKILL: ("killed",
                     "not by the OOM killer: something outside the cell killed it (a `docker kill`, the host "
                     "or its supervisor)"),
    signal.SIGTERM: ("terminated", "something outside the cell asked it to stop (`docker stop`, the host)"),
    signal.SIGFPE: ("arithmetic exception", "the engine divided by zero or similar: see the cell's runner.log"),
}


def signal_of(exit_code: int | None) -> signal.Signals | None:
    """The signal that ended the process, from a Docker exit status (None for a normal exit)."""
    if exit_code is None or exit_code <= SIGNAL_BASE:
        return None
    try:
        return signal.Signals(exit_code - SIGNAL_BASE)
    except ValueError:
        return None


def describe_exit(exit_code: int, oom_killed: bool = False) -> str:
    """A plain-words reason for a non-zero exit status, saying what to do where that is known."""
    sig = signal_of(exit_code)
    if sig is None:
        return f"the runner exited with status {exit_code}"
    if oom_killed:
        return f"killed by the kernel's OOM killer ({sig.name}, exit status {exit_code})"
    what, todo = _MEANING.get(sig, (signal.strsignal(sig) or sig.name, "see the cell's runner.log"))
    return f"killed by {sig.name} ({what}, exit status {exit_code}): {todo}"
