"""The ``burner`` command: the Typer app, and the one place errors become exit codes.

Start-up: the command modules import only Typer and light parts of burnerkit at the top;
each command imports the Messenger (and with it cryptography, the vault, websockets),
Rich and segno inside its body. ``burner --version`` and ``--help`` then cost about what
Typer costs, and every command starts sooner (tests/e2e run hundreds of them);
tests/e2e/test_cli.py checks that ``--version`` loads none of the heavy modules.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated

import typer
from typer.exceptions import TyperException

from burnerkit import __version__
from burnerkit.cli import border, burners, chat, contacts, debrief, duress, issuer, messages, relay
from burnerkit.cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, exit_code
from burnerkit.errors import BurnerError

__all__ = ["app", "demo", "run"]

app = typer.Typer(
    name="burner",
    help="A burner phone in software: disposable identities, post-quantum end-to-end encryption.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # Inherited by every command and group: -h is --help everywhere.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"burner {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """A burner phone in software."""


@app.command("demo")
def demo(
    core: Annotated[bool, typer.Option("--core", help="Only the protocol core, in one process.")] = False,
) -> None:
    """Run the main scenario end to end: a relay, two burners, pairing, chat, burn."""
    # Imported late: keeps the other commands fast.
    if core:
        from burnerkit.demo.core import run as run_core

        run_core(print)
        return
    from burnerkit.demo import run as run_demo

    code = run_demo()
    if code:
        raise typer.Exit(code)


burners.register(app)
contacts.register(app)
debrief.register(app)
duress.register(app)
messages.register(app)
relay.register(app)
issuer.register(app)
border.register(app)
chat.register(app)


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``burner`` with ``argv``; returns the exit code and never shows a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="burner", standalone_mode=False)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0))
    except typer.Abort:
        print("burner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TyperException as exc:  # a usage error: unknown command, missing argument, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"burner: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except BurnerError as exc:
        print(f"burner: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("burner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A file the system refused (permissions, a full disk): its own words, no traceback.
        print(
            f"burner: {exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug: say so plainly; the details only on request
        if os.environ.get("BURNER_DEBUG") == "1":
            traceback.print_exc()
        print(
            f"burner: internal error ({type(exc).__name__}); set BURNER_DEBUG=1 for details", file=sys.stderr
        )
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0
