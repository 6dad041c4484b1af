"""The ``burner`` command.

For now it knows ``demo``, ``relay serve`` and ``--version``; the full command line
(Typer, one group per module) arrives with the vault.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from burnerkit import __version__
from burnerkit.errors import BurnerError

__all__ = ["main"]


def _relay_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    relay = commands.add_parser("relay", help="run a relay")
    relay_commands = relay.add_subparsers(dest="relay_command", required=True)
    serve = relay_commands.add_parser(
        "serve",
        help="serve queues over WebSocket until SIGTERM or Ctrl-C",
        description="Serve relay queues over WebSocket until SIGTERM or Ctrl-C.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=7000, help="TCP port, 0 for any free one (default: %(default)s)"
    )
    serve.add_argument(
        "--store",
        default="burner-relay.sqlite",
        metavar="PATH",
        help="SQLite file, or :memory: for a store that forgets on exit (default: %(default)s)",
    )
    serve.add_argument(
        "--tls-cert", metavar="F", help="PEM certificate chain; serves wss:// (needs --tls-key)"
    )
    serve.add_argument("--tls-key", metavar="F", help="PEM private key (needs --tls-cert)")
    serve.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus GET /metrics on N")
    serve.add_argument(
        "--metrics-host", default="127.0.0.1", help="interface of the metrics endpoint (default: %(default)s)"
    )
    serve.add_argument("--quota", type=int, metavar="N", help="messages per queue (default: 128)")
    serve.add_argument("--ttl", type=int, metavar="SECONDS", help="message lifetime (default: 604800)")
    serve.add_argument(
        "--sweep-interval", type=float, metavar="SECONDS", help="between sweeps (default: 3600)"
    )


def _relay_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # Imported late: keeps --version and demo free of websockets and the server.
    from burnerkit.relay.server.cli import serve
    from burnerkit.relay.server.config import RelayConfig

    optional = {
        name: value
        for name, value in (("quota", args.quota), ("ttl", args.ttl), ("sweep_interval", args.sweep_interval))
        if value is not None
    }
    try:
        config = RelayConfig(
            host=args.host,
            port=args.port,
            store=args.store,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            **optional,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return serve(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``burner`` command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="burner", description="A burner phone in software.")
    parser.add_argument("--version", action="version", version=f"burner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the end-to-end scenario in-process")
    _relay_parser(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from burnerkit.demo import run  # imported late: keeps --version fast

            run(print)
            return 0
        if args.command == "relay":
            return _relay_serve(args, parser)
    except BurnerError as exc:
        print(f"burner: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    raise SystemExit(main())
