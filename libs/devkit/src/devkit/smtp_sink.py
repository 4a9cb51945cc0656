"""A local SMTP sink (aiosmtpd) that keeps every message it receives, for tests and people.

`python -m devkit.smtp_sink --port 1025 --dir .run/mail` (`make run` starts it) writes
each message as `<n>-<message id>.eml` and one JSON line per message in `index.jsonl`; tests
start `MailSink` in their own event loop on a free port and read `sink.messages`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

# aiosmtpd's logger: every command and reply of a session at info, ≈ 12 lines per message.
SMTP_LOGGER = "mail.log"


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message the sink accepted."""

    mail_from: str
    to: list[str]
    subject: str
    message_id: str
    body: str
    received_at: str


class MailSink:
    """An aiosmtpd handler that records messages (and writes them to `directory` when given)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.messages: list[ReceivedMail] = []
        self.directory = directory
        self.server: asyncio.Server | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        """Accept and keep one message."""
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=default_policy)
        body_part = parsed.get_body(preferencelist=("plain",))
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from or ""),
            to=[str(r) for r in envelope.rcpt_tos],
            subject=str(parsed.get("Subject", "")),
            message_id=str(parsed.get("Message-ID", "")),
            body=body_part.get_content() if body_part is not None else "",
            received_at=datetime.now(UTC).isoformat(),
        )
        self.messages.append(mail)
        if self.directory is not None:
            stem = re.sub(r"[^A-Za-z0-9.-]", "_", mail.message_id.strip("<>")) or "message"
            (self.directory / f"{len(self.messages):05d}-{stem}.eml").write_bytes(raw)
            with (self.directory / "index.jsonl").open("a") as index:
                index.write(json.dumps(asdict(mail)) + "\n")
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        """Messages addressed to `address`."""
        return [m for m in self.messages if address in m.to]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen in the running loop; the port actually bound."""
        # Only its warnings: a sink in the same process as the services (tests, the benchmark's
        # count of writes) otherwise drowned their logs in SMTP dialogue.
        logging.getLogger(SMTP_LOGGER).setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self), host, port)
        sockets = self.server.sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


async def _serve(args: Any) -> None:
    sink = MailSink(Path(args.dir) if args.dir else None)
    port = await sink.start(args.host, args.port)
    print(f"READY {args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Local SMTP sink that keeps what it receives.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", default="", help="write messages here (.eml + index.jsonl)")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
