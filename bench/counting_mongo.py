"""`python -m bench.counting_mongo [--port 0 …]`: the embedded Mongo server of
`devkit.embedded_mongo` (same arguments, same corrections, same `READY` line) that also counts
every command it receives, by the client's application name and the command. The bench has the
runner launch it (`SHOP_MONGO_MODULE=bench.counting_mongo`) to count Mongo round trips per order.

Why on the server: mongoeco's `serverStatus().opcounters` cannot give round trips (they count
documents, not commands: an `insert` of 5 documents is 5; a `find` counts 2 queries; a
`commitTransaction` no distinct counter), and a PyMongo command listener in each service would
run Python callbacks on the measured path, in the very processes whose CPU the bench measures.
Here the server has already decoded the command and its connection's handshake; one counter
increment per command (well under a microsecond, against the ≈ 1 ms mongoeco spends on a
command) is all it adds, in the Mongo process.

Attribution: `kit.mongo.connect` names a service's client after the service (`appname`), which
PyMongo sends in each connection's handshake, so a command counts for the service that sent it
whichever server or layout (replicas of a service share the name); clients without a name (the
bench's own probes, the seed modules) count under `-`. Every command counts: reads, writes,
`getMore`, commits and aborts, and also the drivers' `hello` (handshakes and monitoring),
`endSessions`, `ping`.

The counts ride in `serverStatus`'s reply as `commandCounts: [{app, command, n}, …]` (the bench
already reads `serverStatus` for the opcounters; no new command for the wire surface to refuse).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mongoeco.wire.connections import WireConnectionContext
from mongoeco.wire.executor import WireCommandExecutor
from mongoeco.wire.requests import WireRequestContext

from devkit import embedded_mongo

UNNAMED = "-"
COUNTS: Counter[tuple[str, str]] = Counter()


def app_of(connection: WireConnectionContext) -> str:
    """The `application.name` of the connection's handshake, or `-`."""
    metadata = connection.client_metadata or {}
    application = metadata.get("application")
    name = application.get("name") if isinstance(application, dict) else None
    return name if isinstance(name, str) and name else UNNAMED


def count_commands(counts: Counter[tuple[str, str]] = COUNTS) -> None:
    """Count each command the wire executor runs into `counts` (idempotent)."""
    original = WireCommandExecutor.execute_prepared
    if getattr(original, "_counts_commands", False):
        return

    async def execute_prepared(
        self: WireCommandExecutor, context: WireRequestContext
    ) -> dict[str, Any]:
        try:
            result = await original(self, context)
        finally:
            # After it ran: a handshake names its own connection, and a command that failed (a
            # write conflict) was a round trip too.
            counts[(app_of(context.connection), context.command_name)] += 1
        if context.command_name == "serverStatus" and result.get("ok"):
            result["commandCounts"] = [
                {"app": app, "command": command, "n": n}
                for (app, command), n in sorted(counts.items())
            ]
        return result

    execute_prepared._counts_commands = True  # type: ignore[attr-defined]
    WireCommandExecutor.execute_prepared = execute_prepared  # type: ignore[method-assign]


def main() -> None:
    count_commands()
    embedded_mongo.main()


if __name__ == "__main__":
    main()
