"""Send side of the relay example: leave messages on a queue by its sender id.

    python examples/relay_sender.py ws://127.0.0.1:7000 SENDER_ID "first" "second"

Each send returns only after the relay stored the message durably; a send that
loses its connection is retried with the same idempotency key, so it is stored once.
The relay learns nothing about who sent it. (In burnerkit proper the body is a
15,872-byte end-to-end envelope; this example sends text to keep it readable.)
"""

from __future__ import annotations

import asyncio
import sys

from burnerkit.errors import BurnerError
from burnerkit.relay.client import RelayClient


async def send_all(url: str, sender_id: bytes, texts: list[str]) -> None:
    """Send each text in order."""
    async with RelayClient(url) as client:
        for text in texts:
            await client.send(sender_id, text.encode())
            print(f"stored: {text}")


def main(argv: list[str]) -> int:
    """``URL SENDER_ID TEXT...``."""
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        asyncio.run(send_all(argv[0], bytes.fromhex(argv[1]), argv[2:]))
    except (BurnerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
