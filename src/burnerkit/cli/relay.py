"""``burner relay serve``, ``relay cert``, ``relay set``: run a relay, pin it, move a burner to another.

Relay URLs and pins are docs/protocol.md §14.13, relay moves §17.6; the server itself is
:mod:`burnerkit.relay.server`, imported only when ``serve`` runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, JsonOpt, open_messenger
from burnerkit.errors import UsageError

__all__ = ["cert", "register", "relay_app", "serve", "set_relay"]

relay_app = typer.Typer(
    help="Run a relay, or move a burner to another.", no_args_is_help=True, add_completion=False
)

#: What ``relay set`` says of each contact's move (``RelayMove.state``).
_MOVE_STATES = {
    "moved": "moved",
    "pending": "pending: told; switches when they next receive",
    "queued": "pending: the news waits in the outbox (their relay is unreachable); sent by a later run",
    "waiting": "waiting: no queue on the new relay yet; run 'burner relay set' again",
}


@relay_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 0 for any free one.")] = 7000,
    public_host: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="The name clients use, for the URL printed [default: --host]."),
    ] = None,
    store: Annotated[
        str, typer.Option(metavar="PATH", help="SQLite file, or :memory: for a store that forgets on exit.")
    ] = "burner-relay.sqlite",
    tls_cert: Annotated[
        str | None, typer.Option(metavar="F", help="PEM certificate chain; serves wss://.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(metavar="F", help="PEM private key (with --tls-cert).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(metavar="N", help="Serve Prometheus GET /metrics.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface of the metrics endpoint.")] = "127.0.0.1",
    quota: Annotated[int | None, typer.Option(metavar="N", help="Messages per queue [default: 128].")] = None,
    ttl: Annotated[
        int | None, typer.Option(metavar="SECONDS", help="Message lifetime [default: 604800].")
    ] = None,
    sweep_interval: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Between expiry sweeps [default: 3600].")
    ] = None,
    mailbox_ttl: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Lifetime of a pairing mailbox [default: 600].")
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            metavar="N", help="Commands per second one connection may send on average [default: 500]."
        ),
    ] = None,
    rate_burst: Annotated[
        int | None,
        typer.Option(metavar="N", help="Commands one connection may send at once [default: 1000]."),
    ] = None,
    write_behind: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="How long a message to an online recipient may wait unwritten; acknowledged "
            "by then, it never touches the disk. 0: write every message first [default: 0.25].",
        ),
    ] = None,
) -> None:
    """Serve relay queues over WebSocket until SIGTERM or Ctrl-C."""
    # Imported late: the other commands never load the server.
    from burnerkit.relay.server.cli import serve as run_server
    from burnerkit.relay.server.config import RelayConfig

    optional = {
        name: value
        for name, value in (
            ("quota", quota),
            ("ttl", ttl),
            ("sweep_interval", sweep_interval),
            ("mailbox_ttl", mailbox_ttl),
            ("rate_limit", rate_limit),
            ("rate_burst", rate_burst),
            ("write_behind", write_behind),
        )
        if value is not None
    }
    try:
        config = RelayConfig(
            host=host,
            public_host=public_host,
            port=port,
            store=store,
            tls_cert=tls_cert,
            tls_key=tls_key,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            **optional,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    code = run_server(config)
    if code:
        raise typer.Exit(code)


@relay_app.command("cert")
def cert(
    host: Annotated[str, typer.Option(metavar="NAME", help="The name or address clients use.")],
    port: Annotated[int, typer.Option(help="The port the relay will serve on.")] = 7000,
    cert_file: Annotated[str, typer.Option("--cert", metavar="F", help="Where to write the certificate.")] = (
        "relay-cert.pem"
    ),
    key_file: Annotated[str, typer.Option("--key", metavar="F", help="Where to write the private key.")] = (
        "relay-key.pem"
    ),
    days: Annotated[int, typer.Option(metavar="N", help="Days the certificate is valid.")] = 730,
) -> None:
    """Make a self-signed TLS certificate and print the pinned wss:// URL to hand out.

    Serve with `burner relay serve --tls-cert F --tls-key F`; burners given the pinned URL
    trust this certificate alone, no CA needed.
    """
    from burnerkit.relay.server.cli import make_certificate

    url = make_certificate(host, port, cert_file, key_file, days=days)
    typer.echo(f"wrote {cert_file} and {key_file} (keep the key private)")
    typer.echo(url)


@relay_app.command("set")
def set_relay(
    url: Annotated[str, typer.Argument(metavar="URL", help="The new relay: ws:// or wss://, pinned or not.")],
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a ws:// relay on another machine (unencrypted).")
    ] = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Move a burner to another relay: its queues go there, each contact is told in its session."""
    import asyncio

    from burnerkit.cli.output import console, err_console, print_json, spinner

    with (
        open_messenger(home, burner, quiet=json_out) as messenger,
        spinner(f"moving to {url}…", quiet=json_out),
    ):
        moves = asyncio.run(messenger.relay_set(url, insecure=insecure))
        name = messenger.name
    if json_out:
        print_json({"relay": url, "contacts": [move.to_json() for move in moves]})
        return
    for move in moves:
        console.print(f"{move.alias}: {_MOVE_STATES[move.state]}", markup=False)
    err_console.print(
        f"{name} now uses {url} for its queues; each contact switches when they next receive, "
        "and the old queues are deleted by a later 'burner inbox'. Open invitations stay on the "
        "old relay until accepted or expired.",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``relay`` group to ``app``."""
    app.add_typer(relay_app, name="relay")
