"""Runs one sandbox launcher process: feeds stdin, collects capped output, enforces the wall clock, and
stops everything the moment a limit is broken."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# After ``kill``, how long the launcher may take to exit by itself (bwrap reaping its sandbox, so that nothing
# is orphaned) before its process group gets SIGKILL; and how long to keep draining its pipes.
_ESCALATE_AFTER_S = 1.0
_KILL_GRACE_S = 3.0
_POLL_S = 0.05
_CHUNK = 65536


@dataclass(slots=True)
class Outcome:
    exit_code: int  # 128+N for a signal, like a shell
    stdout: bytes
    stderr: bytes
    stdout_cut: bool
    stderr_cut: bool
    stopped_for: str | None  # the reason we killed it: "timeout", "output", or a breach reason
    duration_s: float
    cpu_seconds: float  # user+system of the launcher and every descendant it reaped
    extra: dict[int, bytes]  # what the launcher wrote on the extra pipes we read (status fds)


class _Capped:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.cut = False

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True when the stream went past the limit."""
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.data += chunk[: max(room, 0)]
            self.cut = True
            return True
        self.data += chunk
        return False


def supervise(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin: bytes | None,
    wall_seconds: float,
    max_output_bytes: int,
    kill: Callable[[subprocess.Popen], None],
    breach: Callable[[], str | None] | None = None,
    pass_fds: Sequence[int] = (),
    read_fds: Sequence[int] = (),
    after_start: Callable[[], None] | None = None,
) -> Outcome:
    """Run ``argv`` (the launcher: bwrap or the docker CLI) to completion or until a limit is broken.

    ``kill`` must stop everything the launcher started (the launcher's process group gets SIGKILL a second
    later if it is still there); ``breach`` is polled and returns a reason when the backend sees a limit
    broken (memory, processes). ``read_fds`` are extra pipe read ends, read like the output and always
    closed here, whose content is returned in ``Outcome.extra``; ``after_start`` runs once the launcher is
    started (to close our copies of the fds it inherited, so that its pipes reach end-of-file).
    Raises OSError when the launcher cannot be started at all.
    """
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            pass_fds=tuple(pass_fds),
            start_new_session=True,  # its own process group: kill() can take the launcher down as a whole
        )
    except OSError:
        for fd in read_fds:
            os.close(fd)
        raise
    if after_start is not None:
        after_start()
    outputs = {
        proc.stdout.fileno(): _Capped(max_output_bytes),
        proc.stderr.fileno(): _Capped(max_output_bytes),
    }
    extras: dict[int, bytearray] = {fd: bytearray() for fd in read_fds}
    selector = selectors.DefaultSelector()
    for fd in (*outputs, *extras):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin or b"")
    if stdin is not None:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()

    deadline = started + wall_seconds
    stopped_for: str | None = None
    escalate_at = give_up_at = float("inf")

    def stop(reason: str) -> None:
        nonlocal stopped_for, give_up_at, escalate_at
        if stopped_for is None:
            stopped_for = reason
            kill(proc)
            escalate_at = time.monotonic() + _ESCALATE_AFTER_S
            give_up_at = time.monotonic() + _KILL_GRACE_S

    def tick() -> None:
        """Enforce the wall clock, poll for a breach, and escalate a kill that is taking too long."""
        nonlocal escalate_at
        now = time.monotonic()
        if now >= deadline:
            stop("timeout")
        if breach is not None and stopped_for is None:
            reason = breach()
            if reason:
                stop(reason)
        if now >= escalate_at:
            escalate_at = float("inf")
            kill_process_group(proc)

    try:
        while selector.get_map():
            tick()
            now = time.monotonic()
            if now >= give_up_at:
                break  # something still holds its pipes open: stop reading them
            wait = min(deadline, give_up_at, escalate_at) - now
            if breach is not None and stopped_for is None:
                wait = min(wait, _POLL_S)
            for key, _ in selector.select(max(wait, 0)):
                fd = key.fd
                if proc.stdin is not None and not proc.stdin.closed and fd == proc.stdin.fileno():
                    try:
                        pending = pending[os.write(fd, pending[:_CHUNK]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it exited or closed stdin: the rest is not wanted
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(fd)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                elif fd in outputs:
                    if outputs[fd].add(chunk):
                        stop("output")
                elif len(extras[fd]) < _CHUNK:
                    extras[fd] += chunk

        status, rusage = _wait(proc, tick)
    finally:
        selector.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        for fd in extras:
            os.close(fd)
        if proc.returncode is None:  # only on an unexpected error above: never leave it running
            kill(proc)
            _reap(proc)

    stdout_buf, stderr_buf = list(outputs.values())
    return Outcome(
        exit_code=status,
        stdout=bytes(stdout_buf.data),
        stderr=bytes(stderr_buf.data),
        stdout_cut=stdout_buf.cut,
        stderr_cut=stderr_buf.cut,
        stopped_for=stopped_for,
        duration_s=time.monotonic() - started,
        cpu_seconds=(rusage.ru_utime + rusage.ru_stime) if rusage else 0.0,
        extra={fd: bytes(data) for fd, data in extras.items()},
    )


def _wait(proc: subprocess.Popen, tick: Callable[[], None]):
    """Reap the launcher with wait4 (for the CPU time of its whole tree), still enforcing the limits: it may
    have closed its output and run on."""
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        tick()
        time.sleep(0.01)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    proc.returncode = code  # tell Popen it is reaped
    return code, rusage


def _reap(proc: subprocess.Popen) -> None:
    try:
        os.waitpid(proc.pid, 0)
    except ChildProcessError:
        pass
    proc.returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL


def kill_process_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
