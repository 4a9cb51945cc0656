"""The embedded MongoDB-wire server (mongoeco) for local mode, tests and the benchmark.

`python -m devkit.embedded_mongo --port 27017 [--path data.sqlite]` serves until SIGINT/SIGTERM and
prints one line `READY mongodb://host:port/` once it accepts connections, so that a supervisor or a
test fixture can wait for it. `--port 0` picks a free port. Without `--path` data lives in memory.

Two corrections to mongoeco's memory engine, both scans where MongoDB uses the `_id` index
(bench/README.md, "Growth"), both only for string and ObjectId ids (compared exactly by their
storage key; numeric ids keep mongoeco's by-value handling):

- `plain_ids_skip_scan`: every single-document insert scanned the whole collection comparing
  `_id`s (so that 1 and 1.0 collide). Inserts into a 20 000-document collection went from
  O(collection) to constant time.
- `id_in_uses_keys`: a filter with `_id: {$in: [...]}` (the outbox relay's claim and mark-sent,
  batch reads by id) scanned the collection; its candidates are now looked up by key, and the
  whole filter still runs on them.

And one setting: the change-stream history is `CHANGE_STREAM_HISTORY` events, not mongoeco's
10 000. mongoeco keeps every write committed in a transaction as a change event (a deep copy)
for `watch()` to resume from, whether anyone watches or not, and the shop never does. Found by
the soak (bench/SOAK.md): every server's history filled towards 10 000 events (analytics' reached
it in 10 minutes at 1 order/s). Bounded, but dead weight: 2 000 transactions of two ≈ 1 KB
inserts grew a server's RSS by 10.3 MB with the default history against 3.8 MB with this one.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from bson import ObjectId
from mongoeco import AsyncMongoClient as MongoEcoClient
from mongoeco.core.query_plan import AndCondition, InCondition
from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.engines._memory_collection import MemoryCollection
from mongoeco.wire import AsyncMongoEcoProxyServer

_PLAIN_IDS = (str, ObjectId)
# Change events kept for a change stream to resume from (mongoeco's default: 10 000). Nothing in
# the shop watches a change stream; a few dozen keep `watch()` usable in a test.
CHANGE_STREAM_HISTORY = 64


def plain_ids_skip_scan() -> None:
    """Skip mongoeco's full-collection `_id` scan for string and ObjectId ids (idempotent).

    The scan exists for ids whose BSON equality differs from their stored form (numbers: 1 and
    1.0, documents holding numbers). A str or ObjectId id equals another only when their stored
    keys are equal, and that exact lookup (`check_id_storage`) still runs; the unique indexes
    are still checked through their index maps. Duplicates are refused exactly as before.
    """
    original = MemoryEngine._ensure_unique_indexes
    if getattr(original, "_plain_ids_skip_scan", False):
        return

    def ensure_unique_indexes(
        self: MemoryEngine, db_name: str, coll_name: str, candidate: Any, **kwargs: Any
    ) -> None:
        if kwargs.get("scan_payload_id") and isinstance(candidate.get("_id"), _PLAIN_IDS):
            kwargs["scan_payload_id"] = False
        original(self, db_name, coll_name, candidate, **kwargs)

    ensure_unique_indexes._plain_ids_skip_scan = True  # type: ignore[attr-defined]
    MemoryEngine._ensure_unique_indexes = ensure_unique_indexes  # type: ignore[method-assign]


def _plain_id_in(plan: Any) -> tuple[Any, ...] | None:
    """The values of an `_id: {$in: [...]}` clause of `plan` when all are plain ids."""
    for node in plan.clauses if isinstance(plan, AndCondition) else (plan,):
        if (
            isinstance(node, InCondition)
            and node.field == "_id"
            and all(isinstance(value, _PLAIN_IDS) for value in node.values)
        ):
            return node.values
    return None


def id_in_uses_keys() -> None:
    """Candidates of an `_id: {$in: [plain ids]}` filter by key instead of a scan (idempotent).

    Only the candidates change: the engine still matches every candidate against the whole
    filter, in natural order. Not with a collation (it could make other ids equal).
    """
    original = MemoryEngine._candidate_items_for_plan_locked
    if getattr(original, "_id_in_uses_keys", False):
        return

    def candidate_items(
        self: MemoryEngine, coll: Any, query_plan: Any, **kwargs: Any
    ) -> list[tuple[Any, Any]]:
        values = _plain_id_in(query_plan)
        if values is None or kwargs.get("collation") is not None:
            return original(self, coll, query_plan, **kwargs)
        keys = {self._storage_key(value) for value in values}
        if isinstance(coll, MemoryCollection):
            ordered = coll.ordered_keys(keys)
        else:
            ordered = [key for key in coll if key in keys]
        return [(key, coll[key]) for key in ordered]

    candidate_items._id_in_uses_keys = True  # type: ignore[attr-defined]
    MemoryEngine._candidate_items_for_plan_locked = candidate_items  # type: ignore[method-assign]


def mongo_url(host: str, port: int) -> str:
    return f"mongodb://{host}:{port}/?directConnection=true"


async def serve(host: str, port: int, path: str | None) -> None:
    plain_ids_skip_scan()
    id_in_uses_keys()
    engine = SQLiteEngine(path) if path else MemoryEngine()
    client = MongoEcoClient(engine, change_stream_history_size=CHANGE_STREAM_HISTORY)
    async with client:  # connects the engine; the server serves this client
        server = AsyncMongoEcoProxyServer(client=client, host=host, port=port)
        address = await server.start()
        print(f"READY {mongo_url(address.host, address.port)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--path", default=None, help="SQLite file for durable data")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.path))


if __name__ == "__main__":
    main()
