"""Supervised child processes and their prefixed output."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from runner.config import ROOT, SERVICE_NAMES

NAME_WIDTH = max(len(n) for n in (*SERVICE_NAMES, "mongo", "runner"))
COLOURS = ("36", "32", "33", "35", "34", "91", "96", "93")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A child that stayed up this long is considered healthy again: its backoff starts over.
BACKOFF_RESET_AFTER = 30.0


class Printer:
    """Writes lines prefixed with a padded (and, on a terminal, coloured) name."""

    def __init__(self, colour: bool, out: TextIO = sys.stdout) -> None:
        self._colour = colour
        self._out = out
        self._codes: dict[str, str] = {}

    def __call__(self, name: str, line: str) -> None:
        label = name.ljust(NAME_WIDTH)
        if self._colour:
            code = self._codes.setdefault(name, COLOURS[len(self._codes) % len(COLOURS)])
            label = f"\033[{code}m{label}\033[0m"
        self._out.write(f"{label} | {line}\n")
        self._out.flush()


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the runner dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process: started, its output forwarded, restarted with backoff."""

    name: str
    argv: list[str]
    env: dict[str, str]
    say: Printer
    restart: bool
    ready_prefix: str | None = None  # a line that announces readiness, e.g. "READY "
    process: asyncio.subprocess.Process | None = None
    ready_line: asyncio.Future[str] | None = None
    stopping: bool = False
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Start the process and a task that forwards its output and supervises it."""
        self.ready_line = asyncio.get_running_loop().create_future()
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own process group: Ctrl-C reaches the runner only, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            limit=1 << 20,
        )
        self.say("runner", f"started {self.name} (pid {self.process.pid})")

    async def _forward_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError:  # a line above the limit: skip it rather than stop reading
                continue
            if not raw:
                if self.ready_prefix and self.ready_line and not self.ready_line.done():
                    self.ready_line.set_exception(RuntimeError(f"{self.name} exited before ready"))
                return
            line = raw.decode(errors="replace").rstrip("\n")
            if self.ready_prefix and line.startswith(self.ready_prefix):
                if self.ready_line and not self.ready_line.done():
                    self.ready_line.set_result(line.removeprefix(self.ready_prefix))
            self.say(self.name, line)

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            process = self.process
            assert process is not None
            started = time.monotonic()
            await self._forward_output(process)
            code = await process.wait()
            if self.stopping:
                self.say("runner", f"{self.name} stopped ({describe_exit(code)})")
                return
            self.say("runner", f"{self.name} exited unexpectedly ({describe_exit(code)})")
            if not self.restart:
                return
            if time.monotonic() - started >= BACKOFF_RESET_AFTER:
                backoff = BACKOFF_FIRST
            self.say("runner", f"restarting {self.name} in {backoff:g}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self.stopping:
                return
            await self._spawn()

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; waits for the supervision task."""
        self.stopping = True
        await self._terminate(grace)
        if self._task is not None:
            # Let it forward the last lines and report the exit; a restart backoff is cancelled.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 2.0)
        await self._terminate(grace)  # a restart that raced with the stop

    async def _terminate(self, grace: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self.say("runner", f"{self.name} did not stop within {grace:g}s: killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def describe_exit(code: int) -> str:
    """`exit 1`, or `SIGTERM` for a process ended by a signal (uvicorn re-raises SIGTERM)."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"
