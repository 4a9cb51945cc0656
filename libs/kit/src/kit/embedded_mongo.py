"""The embedded MongoDB-wire server (mongoeco) for local mode and tests.

`python -m kit.embedded_mongo --port 27017 [--path data.sqlite]` serves until SIGINT/SIGTERM and
prints one line `READY mongodb://host:port/` once it accepts connections, so that a supervisor or a
test fixture can wait for it. `--port 0` picks a free port. Without `--path` data lives in memory.

One correction to mongoeco's memory engine (`plain_ids_skip_scan`): every single-document
insert scanned the whole collection comparing `_id`s (so that numeric ids such as 1 and 1.0
collide, as in MongoDB); a string or ObjectId `_id` is already checked exactly by its storage
key, so for those the scan is skipped. Measured: inserts into a 20 000-document collection went
from O(collection) to constant time (bench/README.md, "Growth").
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from bson import ObjectId
from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer

_PLAIN_IDS = (str, ObjectId)


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


def mongo_url(host: str, port: int) -> str:
    return f"mongodb://{host}:{port}/?directConnection=true"


async def serve(host: str, port: int, path: str | None) -> None:
    plain_ids_skip_scan()
    engine = SQLiteEngine(path) if path else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
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
