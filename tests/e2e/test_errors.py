"""Failures the user sees: an exit code from the table in cli/errors.py and one line, never a traceback."""

from __future__ import annotations

from tests.e2e.helpers import Person, together
from tests.integration.harness import free_port


def test_passphrase_is_never_taken_from_argv(people):
    (alice,) = people("alice")
    url = f"ws://127.0.0.1:{free_port()}"
    refused, refused_inline, usage = together(
        alice.start("new", "alice", "--relay", url, "--passphrase", "hunter2hunter2"),
        alice.start("new", "alice", "--relay", url, "--passphrase=hunter2hunter2"),
        alice.start("new", "--help"),
        expect=None,
    )
    for outcome in (refused, refused_inline):
        assert outcome.returncode == 2, outcome.describe()
        assert outcome.stdout == ""
        assert "No such option: --passphrase" in outcome.stderr
        assert "hunter2" not in outcome.stderr
    assert usage.returncode == 0
    assert "--passphrase" not in usage.stdout
    assert not alice.home.exists() or alice.json("list") == []  # nothing was minted


def test_errors_are_one_line_without_traceback(people, tmp_path):
    alice, crowded = people("alice", "crowded")
    alice.relay_timeout = 3
    dead_relay = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    other = Person(crowded.home.parent, "other")
    other.home = crowded.home  # a second burner in the same home
    minted = (person.mint(dead_relay, "--offline") for person in (alice, crowded, other))
    together(*minted)

    cases = [
        (alice, ("send", "nobody", "hi"), 3, "burner: no contact named 'nobody' (see 'burner contacts')"),
        (alice, ("verify", "nobody"), 3, "burner: no contact named 'nobody' (see 'burner contacts')"),
        (
            alice,
            ("contacts", "--burner", "ghost"),
            4,
            "burner: no burner named 'ghost' opens with this passphrase",
        ),
        (
            alice,
            ("accept", "https://example.com/invite", "--name", "bob"),
            2,
            "burner: not a burner invitation link (it must start with 'burner:s1.' or 'burner:i1.')",
        ),
        (alice, ("accept", "burner:i1.AAAA", "--name", "bob"), 2, "burner: the invitation link is damaged"),
        (alice, ("invite",), 6, f"burner: relay unreachable: {dead_relay} (connection refused)"),
        (alice, ("burn",), 2, "burner: burning cannot be undone: add --yes"),
        (
            alice,
            ("new", "alice", "--relay", dead_relay),
            10,
            f"burner: a burner named 'alice' already exists in {alice.home}",
        ),
        (
            crowded,
            ("contacts",),
            2,
            f"burner: 2 burners in {crowded.home}: say which with --burner NAME",
        ),
    ]
    outcomes = together(*(person.start(*args) for person, args, _, _ in cases), expect=None)
    for (_, args, code, message), outcome in zip(cases, outcomes, strict=True):
        assert outcome.returncode == code, outcome.describe()
        assert outcome.stdout == "", outcome.describe()
        line = outcome.error  # exactly one line
        assert line.startswith("burner: "), outcome.describe()
        if message is not None:
            assert line == message, args
    # With --burner the crowded home works.
    assert other.json("contacts", "--burner", "other") == []


def test_a_bad_relay_setting_is_one_line_without_traceback(people, tmp_path):
    (operator,) = people("operator")
    store = str(tmp_path / "relay.sqlite")
    cases = [
        (("--rate-limit", "0"), "burner: rate limit must be a positive number"),
        (("--rate-limit", "inf"), "burner: rate limit must be a positive number"),
        (("--rate-limit", "nan"), "burner: rate limit must be a positive number"),
        (("--rate-burst", "0"), "burner: rate burst must be at least 1"),
        (("--sweep-interval", "inf"), "burner: sweep interval must be a positive number"),
        (("--mailbox-ttl", "-1"), "burner: mailbox ttl must be a positive number"),
        (("--quota", "0"), "burner: quota must be at least 1"),
    ]
    outcomes = together(
        *(operator.start("relay", "serve", "--port", "0", "--store", store, *args) for args, _ in cases),
        expect=None,
    )
    for (args, message), outcome in zip(cases, outcomes, strict=True):
        assert outcome.returncode == 2, outcome.describe()
        assert outcome.error == message, args
    assert not (tmp_path / "relay.sqlite").exists()  # refused before anything was opened


def test_new_against_a_dead_relay_exits_6_and_creates_nothing(people):
    alice, bob = people("alice", "bob")
    dead_relay = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    # A ws:// relay on another machine is refused before anything is tried.
    unencrypted = bob.mint("ws://relay.example.org:7000")
    refused, unencrypted_refused = together(alice.mint(dead_relay), unencrypted, expect=None)

    assert refused.returncode == 6, refused.describe()
    assert refused.error == (
        f"burner: relay unreachable: {dead_relay} (connection refused). Nothing was created: is the "
        "relay running, and is the URL right? To mint the burner without this check, add --offline"
    )
    assert unencrypted_refused.returncode == 2, unencrypted_refused.describe()
    assert unencrypted_refused.error == (
        "burner: ws:// sends to relay.example.org unencrypted: use wss://, or --insecure if you mean it"
    )
    for person in (alice, bob):
        assert not person.home.exists() or person.json("list") == []
