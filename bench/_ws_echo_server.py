"""A bare websockets echo server, run in its own process by :mod:`bench.relay`.

``python -m bench._ws_echo_server``: listens on a free loopback port, prints
``echo listening on PORT`` and echoes every message back until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from websockets.asyncio.server import ServerConnection, serve

FRAME_SIZE = 16_384


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        _echo, "127.0.0.1", 0, compression=None, max_size=FRAME_SIZE, ping_interval=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"echo listening on {port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_main())
