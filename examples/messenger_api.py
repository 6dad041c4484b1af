"""Two burners through the Python API: mint, pair by link, chat, burn.

    python examples/messenger_api.py ws://127.0.0.1:7000 /tmp/burner-example

The same calls the ``burner`` command makes (``burnerkit.cli`` is a thin face over
:class:`burnerkit.app.messenger.Messenger`). The passphrases here are literals only
because this is an example; a real program asks for them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger


async def main(relay_url: str, root: Path) -> None:
    """Alice and Bob, each with a home under ``root``, through the relay at ``relay_url``."""
    alice = Messenger.create(Home(root / "alice"), "alice", "alice's passphrase", relay_url=relay_url)
    bob = Messenger.create(Home(root / "bob"), "bob", "bob's passphrase", relay_url=relay_url)
    with alice, bob:
        invite = await alice.invite("bob")  # a one-time burner: link, also shown as a QR code
        await bob.accept(invite.link, "alice")
        print("alice's new contacts:", (await alice.receive()).new_contacts)
        await alice.send("bob", "Landed. Room 412.")
        await bob.send("alice", "On my way.", timer=3600)  # disappears an hour after arrival
        for message in (await bob.receive()).messages + (await alice.receive()).messages:
            print(f"{message.alias} #{message.seq}: {message.text}")
        print("safety codes match:", alice.verify("bob").safety_code == bob.verify("alice").safety_code)
        report = await bob.burn()
        print(f"burned {report.name}: {report.queues_deleted} relay queues deleted")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
