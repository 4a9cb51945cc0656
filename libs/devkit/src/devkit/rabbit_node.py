"""A RabbitMQ node of a test's own, that the test may stop and start as it likes.

The machine's broker (127.0.0.1:5672) is shared with other people's tests: a fault that stops the
broker must never stop that node. `RabbitNode.start()` starts a second node from the same
installation, with its own node name, AMQP and distribution ports, Erlang cookie, Mnesia, logs and
plugins file in a temporary directory, listening on 127.0.0.1 only:

    node = await RabbitNode.start()          # a few seconds
    node.amqp_url                            # amqp://guest:guest@127.0.0.1:<port>/
    await node.stop_app(); await node.start_app()   # the broker restart operators meet
    await node.ctl("list_connections", ...)  # rabbitmqctl against this node
    await node.stop()                        # the node goes, its directory too

It needs the server's scripts (`rabbitmq-server`, `rabbitmqctl`, Debian's package puts the real
ones in /usr/lib/rabbitmq/bin). `available()` says whether they are there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Debian's /usr/sbin wrappers switch to the `rabbitmq` user (and its cookie, the shared node's):
# the scripts behind them run the node as whoever calls them.
_BIN_DIRS = (Path("/usr/lib/rabbitmq/bin"), Path("/usr/local/lib/rabbitmq/bin"))


def _script(name: str) -> str | None:
    for directory in _BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    return shutil.which(name)


def available() -> bool:
    """True when this machine can start a node of its own (the server's scripts are here)."""
    return _script("rabbitmq-server") is not None and _script("rabbitmqctl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RabbitNode:
    """One started node (see the module's doc)."""

    base: Path
    name: str
    port: int
    dist_port: int
    keep_dir: bool = False
    _server: str = field(default="", repr=False)
    _ctl: str = field(default="", repr=False)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        """The environment of this node's scripts (its cookie lives in HOME)."""
        base = self.base
        return os.environ | {
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            # Not the machine's rabbitmq-env.conf: it names the shared node.
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            # Loopback only; and no busy-waiting schedulers (the VM would spin on the cores the
            # system under test needs: RabbitMQ's advice for shared machines).
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1}"
                " +sbwt none +sbwtdcpu none +sbwtdio none"
            ),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @classmethod
    async def start(cls, *, prefix: str = "shopchaos", timeout: float = 90.0) -> RabbitNode:
        """Start a fresh node and wait until it serves AMQP."""
        server, ctl = _script("rabbitmq-server"), _script("rabbitmqctl")
        if server is None or ctl is None:
            raise RuntimeError("rabbitmq-server is not installed on this machine")
        base = Path(tempfile.mkdtemp(prefix=f"{prefix}-rabbit-"))
        node = cls(
            base=base,
            name=f"{prefix}{secrets.token_hex(3)}@localhost",
            port=_free_port(),
            dist_port=_free_port(),
            _server=server,
            _ctl=ctl,
        )
        for sub in ("mnesia", "log"):
            (base / sub).mkdir()
        cookie = base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (base / "rabbitmq-env.conf").write_text("")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
            # The chaos suite's load: many connections and channels, short heartbeats.
            "heartbeat = 10\n"
        )
        try:
            await node._run(server, "-detached", timeout=30)
            await node._wait_serving(timeout)
        except BaseException:
            await node.stop()
            raise
        return node

    async def _run(self, *argv: str, timeout: float = 60.0) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            return -1, f"{argv[0]} timed out after {timeout:g}s"
        return process.returncode or 0, out.decode(errors="replace")

    async def ctl(self, *args: str, timeout: float = 60.0) -> tuple[int, str]:
        """`rabbitmqctl -n <this node> args...`: (exit code, output)."""
        return await self._run(self._ctl, "-n", self.name, *args, timeout=timeout)

    async def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # `await_startup` answers at once while the node has not registered with epmd yet.
        while True:
            code, out = await self.ctl("await_startup", "--timeout", "30", timeout=40)
            if code == 0 and _answers(self.port):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.name} did not start: {out[-500:]}")
            await asyncio.sleep(1)

    async def stop_app(self) -> None:
        """Stop the broker application (connections, queues' processes and consumers go)."""
        code, out = await self.ctl("stop_app")
        if code != 0:
            raise RuntimeError(f"stop_app failed: {out[-500:]}")

    async def start_app(self, timeout: float = 60.0) -> None:
        """Start the broker application again and wait until it serves AMQP."""
        code, out = await self.ctl("start_app", timeout=timeout)
        if code != 0:
            raise RuntimeError(f"start_app failed: {out[-500:]}")
        await self._wait_serving(timeout)

    async def stop(self) -> None:
        """Stop the node (the whole VM) and remove its directory."""
        if self._ctl:
            await self.ctl("stop", timeout=60)
        if not self.keep_dir:
            shutil.rmtree(self.base, ignore_errors=True)
