"""Receive side of the relay example: make a queue, then fetch what waits on it.

    burner relay serve --store /tmp/relay.sqlite &             # prints: relay listening on ws://...
    python examples/relay_receiver.py create ws://127.0.0.1:7000 inbox.creds
    python examples/relay_sender.py ws://127.0.0.1:7000 SENDER_ID "hello" "are you there?"
    python examples/relay_receiver.py fetch ws://127.0.0.1:7000 inbox.creds

``create`` prints the sender id to hand to a contact; the receiver can then go offline:
messages wait on the relay (durably) until ``fetch`` subscribes, prints and acks them.
The credentials file holds the queue's private key: in burnerkit proper it lives in
the encrypted vault; this example writes it with mode 0600.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from burnerkit.errors import BurnerError
from burnerkit.relay.client import QueueCredentials, ReceivedMessage, RelayClient


async def create(url: str, path: Path) -> None:
    """Make a queue and save its credentials."""
    async with RelayClient(url) as client:
        creds = await client.create_queue()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(creds.to_bytes())
    print(creds.sender_id.hex())


async def fetch(url: str, path: Path, wait: float = 2.0) -> None:
    """Print and acknowledge every message waiting on the queue."""
    creds = QueueCredentials.from_bytes(path.read_bytes())
    async with RelayClient(url) as client:
        await client.subscribe(creds)
        while True:
            try:
                event = await client.next_delivery(timeout=wait)
            except BurnerError:
                break  # nothing more arrived within `wait` seconds
            if isinstance(event, ReceivedMessage):
                print(event.body.decode(errors="replace"))
                await client.ack(creds, event.msg_id)


def main(argv: list[str]) -> int:
    """``create URL FILE`` or ``fetch URL FILE``."""
    if len(argv) != 3 or argv[0] not in ("create", "fetch"):
        print(__doc__, file=sys.stderr)
        return 2
    command, url, path = argv[0], argv[1], Path(argv[2])
    try:
        asyncio.run(create(url, path) if command == "create" else fetch(url, path))
    except BurnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
