"""The one way every write path runs a MongoDB transaction.

PyMongo's `with_transaction` retries only errors labelled `TransientTransactionError` or
`UnknownTransactionCommitResult`. The embedded server (mongoeco) reports commit-time write
conflicts as a bare `OperationFailure: Write conflict during transaction commit` without a label
(measured: 20 concurrent transactions on one stock document gave 12-15 such errors), so we also
retry code 112 (WriteConflict) and that message. Retries back off with jitter so that contending
writers spread out instead of colliding again.

The embedded server also keeps a transaction whose commit failed attached to its session id, and
PyMongo reuses that id for the next session from its pool: without an explicit abort, the failed
transaction's writes surfaced later (measured: 100 contended commits, 9 reported ok, 10 applied).
So a failed commit is followed by an `abortTransaction`; a real MongoDB answers it with
NoSuchTransaction, which we ignore.

`configure(serial=True)` (the service lifespan calls it when its settings say
`MONGO_SERIAL_TRANSACTIONS=1`; opt-in, default off) runs this process's transactions one at a
time. The embedded server treats any two overlapping write transactions as conflicting, so with
one embedded server per service (`SHOP_MONGO_PER_SERVICE=1`) concurrent transactions of a process
only conflict, retry and back off; measured by `make bench` (bench/README.md), throughput then
fell as concurrency rose, while serialised it rose and no order failed. Not for a real MongoDB
(document-level conflicts), and a transaction body must not start another transaction.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

log = structlog.get_logger("kit.transactions")

WRITE_CONFLICT = 112
DEFAULT_ATTEMPTS = 12

_SERIAL = False  # `configure(serial=...)`
_serial_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)

type Session = AsyncClientSession
type TransactionBody[T] = Callable[[AsyncClientSession], Awaitable[T]]

# Callbacks for after a session's transaction commits (`after_commit`). Each attempt of a body
# runs in a session of its own, so an attempt that aborted takes its callbacks with it.
_commit_hooks: weakref.WeakKeyDictionary[AsyncClientSession, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def configure(*, serial: bool) -> bool:
    """Run this process's transactions one at a time (`serial`), or concurrently; the previous
    setting, to restore. Process-wide: every `run_in_transaction` of the process follows it."""
    global _SERIAL
    previous, _SERIAL = _SERIAL, serial
    return previous


class Conflict(Exception):
    """A write lost a race the application detects itself (e.g. an optimistic version check):
    like a write conflict, trying again from a fresh read is the whole remedy."""


def after_commit(session: AsyncClientSession, callback: Callable[[], None]) -> None:
    """Call `callback()` once the transaction `session` is in has committed, never on an abort.

    For work that must only see committed state: handing committed outbox rows to the relay,
    waking a worker that reads what the transaction wrote. Only `run_in_transaction` calls them.
    """
    _commit_hooks.setdefault(session, []).append(callback)


def _call_all(hooks: list[Callable[[], None]]) -> None:
    for callback in hooks:
        try:
            callback()
        except Exception as exc:  # committed already: a callback's failure is not the body's
            log.warning("transaction.after_commit_failed", error=repr(exc))


def is_retryable(exc: BaseException) -> bool:
    """A failure of the moment rather than of the input: a transient database error, a database
    that cannot be reached, or a `Conflict`. Retrying it is always right; it is never poison."""
    if isinstance(exc, Conflict):
        return True
    return isinstance(exc, PyMongoError) and is_transient(exc)


def is_transient(exc: PyMongoError) -> bool:
    """True for errors where running the whole transaction again is the correct response."""
    if exc.has_error_label("TransientTransactionError"):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code == WRITE_CONFLICT or "write conflict" in str(exc).lower()
    return isinstance(exc, ConnectionFailure)


def _unknown_commit(exc: PyMongoError) -> bool:
    return exc.has_error_label("UnknownTransactionCommitResult")


async def run_in_transaction[T](
    client: AsyncMongoClient[Any],
    body: TransactionBody[T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = 0.005,
    max_delay: float = 0.25,
) -> T:
    """Run `body(session)` inside a transaction and commit it, retrying transient failures.

    `body` must be safe to run again from the start: it is re-run on a transient error. Business
    errors raised by `body` abort the transaction and propagate untouched.
    """
    if _SERIAL:
        loop = asyncio.get_running_loop()
        lock = _serial_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            return await _run(client, body, attempts, base_delay, max_delay)
    return await _run(client, body, attempts, base_delay, max_delay)


async def _run[T](
    client: AsyncMongoClient[Any],
    body: TransactionBody[T],
    attempts: int,
    base_delay: float,
    max_delay: float,
) -> T:
    for attempt in range(1, attempts + 1):
        async with client.start_session() as session:
            committed = False
            try:
                await session.start_transaction()
                try:
                    result = await body(session)
                except BaseException:
                    if session.in_transaction:
                        await _abort_quietly(session)
                    raise
                await _commit(session)
                committed = True
            except PyMongoError as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
            finally:
                hooks = _commit_hooks.pop(session, [])
            if committed:
                _call_all(hooks)
                return result
        await asyncio.sleep(min(max_delay, base_delay * 2**attempt) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover


async def _commit(session: AsyncClientSession) -> None:
    # An unknown commit result is retried as a commit (the server makes it idempotent); a
    # transient error during commit propagates so that the whole body runs again.
    for attempt in range(5):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if attempt == 4 or not _unknown_commit(exc) or is_transient(exc):
                await _discard_failed_commit(session)
                raise
            await asyncio.sleep(0.01 * 2**attempt)


async def _discard_failed_commit(session: AsyncClientSession) -> None:
    try:
        await session.client.admin.command("abortTransaction", session=session)
    except PyMongoError:
        pass  # NoSuchTransaction on a real MongoDB: it aborted the transaction itself


async def _abort_quietly(session: AsyncClientSession) -> None:
    try:
        await session.abort_transaction()
    except PyMongoError:
        pass  # the server aborts on its own when the session ends
