"""The embedded MongoDB-wire server (mongoeco) for local mode and tests.

`python -m kit.embedded_mongo --port 27017 [--path data.sqlite]` serves until SIGINT/SIGTERM and
prints one line `READY mongodb://host:port/` once it accepts connections, so that a supervisor or a
test fixture can wait for it. `--port 0` picks a free port. Without `--path` data lives in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


def mongo_url(host: str, port: int) -> str:
    return f"mongodb://{host}:{port}/?directConnection=true"


async def serve(host: str, port: int, path: str | None) -> None:
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
