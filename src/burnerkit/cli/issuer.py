"""``burner issuer``: an issuing office's key, remote burn orders, sealed reports (docs/protocol.md §17.9).

The office's key file is sealed under a passphrase ($BURNER_PASSPHRASE or a prompt), as a
vault is; its public key is one ``burner:ik1.`` string, given to ``burner new --issuer``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from burnerkit.cli.context import JsonOpt, relay_timeout
from burnerkit.cli.output import console, err_console, print_json, spinner
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.errors import AlreadyExistsError, UsageError

if TYPE_CHECKING:
    from burnerkit.app.issuer import IssuerKeyPair, OrderAddress

__all__ = ["burn", "issuer_app", "new", "open_report", "public", "register", "release", "write_new_file"]

issuer_app = typer.Typer(
    help="An issuing office: its key, remote burn orders, sealed debrief reports.",
    no_args_is_help=True,
    add_completion=False,
)

KeyOpt = Annotated[Path, typer.Option("--key", metavar="FILE", help="The issuer's key file.")]


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner reads; never over an existing one.

    Raises:
        AlreadyExistsError: ``path`` exists.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExistsError(f"{path} exists already: choose another file") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _load_key(path: Path) -> IssuerKeyPair:
    from burnerkit.app.issuer import IssuerKeyPair

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no issuer key file at {path}") from None
    passphrase = ask_passphrase("the issuer key")
    with spinner("unlocking the issuer key…"):
        return IssuerKeyPair.open_file(data, passphrase)


def _order_address(text: str) -> OrderAddress:
    """An order address given as its text, or as a file that holds it."""
    from burnerkit.app.issuer import ORDER_ADDRESS_PREFIX, OrderAddress

    if not "".join(text.split()).startswith(ORDER_ADDRESS_PREFIX) and Path(text).is_file():
        text = Path(text).read_text()
    return OrderAddress.from_text(text)


@issuer_app.command("new")
def new(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the key file (new).")],
    json_out: JsonOpt = False,
) -> None:
    """Make an issuing office's key pair; print its public key for 'burner new --issuer'.

    The key file holds the private keys sealed under a passphrase (Argon2id): keep it,
    and its passphrase, at the office. Whoever holds both can burn the burners that
    carry this key and read their reports.
    """
    from burnerkit.app.issuer import IssuerKeyPair
    from burnerkit.cli.burners import ENV_FAST_KDF
    from burnerkit.crypto.passphrase import DEFAULT_KDF, FAST_TEST_KDF
    from burnerkit.crypto.rng import SystemRandom

    if out.exists():
        raise AlreadyExistsError(f"{out} exists already: choose another file")
    kdf = DEFAULT_KDF
    if os.environ.get(ENV_FAST_KDF) == "1":
        kdf = FAST_TEST_KDF
        err_console.print(f"warning: {ENV_FAST_KDF}=1: this key's passphrase is cheap to guess (tests only)")
    passphrase = ask_passphrase("the issuer key", new=True)
    rng = SystemRandom()
    pair = IssuerKeyPair.generate(rng)
    with spinner("sealing the issuer key…", quiet=json_out):
        data = pair.seal_file(passphrase, kdf, rng)
    write_new_file(out, data)
    public = pair.public.to_text()
    if json_out:
        print_json({"key_file": str(out), "public_key": public})
    else:
        err_console.print(f"issuer key written to {out}; its public key (for 'burner new --issuer'):")
        console.print(public, markup=False)


@issuer_app.command("public")
def public(key: KeyOpt, json_out: JsonOpt = False) -> None:
    """Print the public key of an issuer key file."""
    text = _load_key(key).public.to_text()
    if json_out:
        print_json({"public_key": text})
    else:
        console.print(text, markup=False)


@issuer_app.command("burn")
def burn(
    key: KeyOpt,
    to: Annotated[
        str,
        typer.Option("--to", metavar="ORDER_ADDRESS", help="The burner's order address, or a file of it."),
    ],
    valid: Annotated[
        str, typer.Option("--valid", metavar="DURATION", help="How long the order stays valid (at most 4w).")
    ] = "7d",
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a ws:// relay on another machine (unencrypted).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Order the burner at ORDER_ADDRESS burned: a signed order, sealed, sent to its order queue.

    The burner obeys it the next time it receives (inbox, inbox --follow, chat), if it
    arrives within its validity. The relay answers every order alike, so "sent" says
    the relay has it, not that the burner burned.
    """
    import asyncio
    import time

    from burnerkit.app.durations import parse_duration
    from burnerkit.app.issuer import MAX_ORDER_LIFETIME, BurnOrder, send_order
    from burnerkit.crypto.rng import SystemRandom

    lifetime = parse_duration(valid)
    if not 0 < lifetime <= MAX_ORDER_LIFETIME:
        raise UsageError("an order stays valid from 1 second to 4w")
    address = _order_address(to)
    pair = _load_key(key)
    rng = SystemRandom()
    order = BurnOrder.issue(pair, address.order_id, now=time.time(), rng=rng, lifetime=lifetime)
    relay = address.relay_url.partition("#")[0]
    with spinner(f"sending the burn order to {relay}…", quiet=json_out):
        asyncio.run(send_order(address, order, rng, timeout=relay_timeout(), insecure=insecure))
    if json_out:
        print_json({"sent": True, "relay": relay, "not_after": order.not_after})
    else:
        until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(order.not_after))
        console.print(f"burn order sent to {relay}; valid until {until}", markup=False)


@issuer_app.command("open-report")
def open_report(
    key: KeyOpt,
    report: Annotated[
        Path, typer.Argument(metavar="REPORT", help="A report a burner sealed to this issuer.")
    ],
) -> None:
    """Open a debrief report a burner sealed to this issuer ('burner burn --report-to'); print its JSON."""
    from burnerkit.app.issuer import open_report as _open

    try:
        data = report.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no report at {report}") from None
    print_json(_open(_load_key(key), data))


@issuer_app.command("release")
def release(
    key: KeyOpt,
    request: Annotated[
        str,
        typer.Option(
            "--request", metavar="REQUEST", help="The traveller's return request (burner:bq1.…), or a file."
        ),
    ],
    code: Annotated[str, typer.Option("--code", metavar="CODE", help="The code the traveller read to you.")],
    json_out: JsonOpt = False,
) -> None:
    """Release a burner's vault key after its border crossing (docs/protocol.md §17.12).

    Only if CODE, read by the traveller over a voice line you trust, matches the request:
    the release then opens only with the one-time key the traveller's device made.
    """
    from burnerkit.app.border import REQUEST_PREFIX, ReturnRequest
    from burnerkit.app.border import release as _release
    from burnerkit.crypto.rng import SystemRandom

    if not "".join(request.split()).startswith(REQUEST_PREFIX) and Path(request).is_file():
        request = Path(request).read_text()
    parsed = ReturnRequest.from_text(request)
    text = _release(_load_key(key), parsed, code, SystemRandom())
    if json_out:
        print_json({"release": text})
    else:
        err_console.print("the code matches; give the traveller this release:")
        console.print(text, markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``issuer`` group to ``app``."""
    app.add_typer(issuer_app, name="issuer")
