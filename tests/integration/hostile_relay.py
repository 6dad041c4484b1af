"""A relay that attacks pairing by short code: it plays the other side with a guessed code.

:class:`HostileRelay` is a WebSocket front for a real relay process (``relays.start()``):
every frame of queue traffic (``NEW``, ``SUB``, ``SEND``, ``ACK``, …) and the relay's
answers and pushes pass through unchanged, so invitations and acceptances travel as
they would; the mailbox commands (``MB_ALLOC``, ``MB_JOIN``, ``MB_PUT``, ``MB_GET``,
``MB_DEL``) never reach the real relay. The front answers them itself, through the
project's own codec, as a relay operator who chose to attack would (docs/protocol.md
§16.6): each mailbox a client opens is a private one with the front playing the other
side, running :class:`~burnerkit.protocol.pairing.Pairing` with the code ``guess``
returns for it.

Its strategy is the best one we know against our pairing: send its PAKE message, hold
its own confirmation back until the victim's has arrived, check its guess against that
confirmation offline, and

- if the guess was wrong: say nothing more (the victim learns nothing of the guess);
- if it was right: answer with its confirmation and its payload, or (``withhold_payload``)
  only the confirmation, to take the victim's payload and leave the victim waiting.

Everything it learns is recorded: :attr:`verdicts` (one bool per guess), :attr:`stolen`
(the victims' payloads). :meth:`end` pushes an ``MB_END`` it chooses to every mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import BurnerError, PairingCodeError
from burnerkit.protocol.pairing import MessageKind, Pairing, PairingState, ShortCode, Side, decode_message
from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    FRAME_SIZE,
    MAILBOX_TOKEN_SIZE,
    MailboxEndReason,
    MbAlloc,
    MbDel,
    MbEnd,
    MbGet,
    MbJoin,
    MbMsg,
    MbOpen,
    MbPut,
    Ok,
    ServerResponse,
    decode_client_frame,
    encode_server_frame,
)

__all__ = ["HostileRelay"]

_PUSHED = bytes(CORR_ID_SIZE)
_RNG = SystemRandom()
#: ``guess(nameplate, victim_side)``: the code the relay tries against that victim.
Guess = Callable[[int, Side], ShortCode]


@dataclass
class _Game:
    """One private mailbox: the victim on one side, the relay's machine on the other."""

    nameplate: int
    victim: Side
    token: bytes
    ws: ServerConnection
    machine: Pairing | None = None
    #: what we pushed, in index order (pushed again on MB_GET)
    pushed: list[bytes] = field(default_factory=list)
    #: our confirmation, held back until the victim's has told us whether we guessed right
    held: bytes | None = None
    silent: bool = False


class HostileRelay:
    """A relay whose mailboxes are run by the attacker; see the module docstring.

    Args:
        upstream: the ``ws://`` URL of the real relay process queue traffic goes to.
        guess: the code to try against each victim.
        payload: what the relay gives a victim whose code it guessed (say, its own
            invitation).
        withhold_payload: after a right guess, send the confirmation but never the payload.
        mute: never answer a mailbox message at all (no PAKE message, so no guess).
    """

    def __init__(
        self,
        upstream: str,
        guess: Guess,
        payload: bytes = b"",
        *,
        withhold_payload: bool = False,
        mute: bool = False,
    ) -> None:
        self.upstream = upstream
        self.guess = guess
        self.payload = payload
        self.withhold_payload = withhold_payload
        self.mute = mute
        #: set when a victim has put a message
        self.heard = asyncio.Event()
        self.verdicts: list[bool] = []
        self.stolen: list[bytes] = []
        #: set when a verdict is recorded
        self.learned = asyncio.Event()
        #: set when a victim's payload is taken
        self.took = asyncio.Event()
        self._games: list[_Game] = []
        self._locks: dict[ServerConnection, asyncio.Lock] = {}
        self._server: Server | None = None
        self._next_nameplate = 7

    async def __aenter__(self) -> HostileRelay:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=FRAME_SIZE, compression=None)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def end(self, reason: MailboxEndReason) -> None:
        """Close every mailbox, telling the victims ``reason`` (the relay's to choose)."""
        for game in self._games:
            game.silent = True
            await self._send(game.ws, _PUSHED, game.token, MbEnd(reason))

    # -- the front ------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self._locks[ws] = asyncio.Lock()
        async with connect(self.upstream, max_size=FRAME_SIZE, compression=None, ping_interval=None) as up:

            async def downstream() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for frame in up:
                        async with self._locks[ws]:
                            await ws.send(frame)

            pump = asyncio.create_task(downstream())
            try:
                async for frame in ws:
                    data = frame if isinstance(frame, bytes) else frame.encode()
                    if not await self._mailbox(ws, data):
                        await up.send(data)
            except ConnectionClosed:
                pass
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _send(
        self, ws: ServerConnection, corr_id: bytes, entity: bytes, response: ServerResponse
    ) -> None:
        async with self._locks[ws]:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode_server_frame(corr_id, entity, response))

    async def _mailbox(self, ws: ServerConnection, frame: bytes) -> bool:
        """Answer a mailbox command ourselves; False for anything else (passed through)."""
        try:
            tx = decode_client_frame(frame)
        except BurnerError:
            return False
        match tx.command:
            case MbAlloc() | MbJoin():
                if isinstance(tx.command, MbJoin):
                    nameplate, victim = tx.command.nameplate, Side.B
                else:
                    nameplate, victim = self._next_nameplate, Side.A
                    self._next_nameplate += 1
                game = _Game(nameplate, victim, _RNG.random_bytes(MAILBOX_TOKEN_SIZE), ws)
                self._games.append(game)
                await self._send(ws, tx.corr_id, tx.entity, MbOpen(nameplate, game.token))
            case MbPut(_, body):
                await self._send(ws, tx.corr_id, tx.entity, Ok())
                played = self._game(tx.entity)
                self.heard.set()
                if played is not None and not played.silent and not self.mute:
                    await self._play(played, body)
            case MbGet():
                await self._send(ws, tx.corr_id, tx.entity, Ok())
                again = self._game(tx.entity)
                for index, body in enumerate(again.pushed if again is not None else []):
                    await self._send(ws, _PUSHED, tx.entity, MbMsg(index, body))
            case MbDel():
                await self._send(ws, tx.corr_id, tx.entity, Ok())
            case _:
                return False
        return True

    def _game(self, token: bytes) -> _Game | None:
        return next((g for g in self._games if g.token == token), None)

    async def _push(self, game: _Game, body: bytes) -> None:
        game.pushed.append(body)
        await self._send(game.ws, _PUSHED, game.token, MbMsg(len(game.pushed) - 1, body))

    async def _play(self, game: _Game, body: bytes) -> None:
        if game.machine is None:
            # Our PAKE message only now, once the code is out: the guess can be anything.
            game.machine = Pairing(
                self.guess(game.nameplate, game.victim), game.victim.other, self.payload, rng=_RNG
            )
            await self._push(game, game.machine.start())
        kind = decode_message(body).kind
        try:
            reply = game.machine.receive(body)
        except PairingCodeError:
            # The victim's confirmation says our guess was wrong: we learnt it offline, and
            # the victim learns nothing if we simply stop here.
            game.silent = True
            self._learn(verdict=False)
            return
        except BurnerError:
            return
        if kind is MessageKind.PAKE:
            game.held = reply
        elif kind is MessageKind.CONFIRM:
            self._learn(verdict=True)
            assert game.held is not None
            await self._push(game, game.held)
            if not self.withhold_payload and reply is not None:
                await self._push(game, reply)
        if game.machine.state is PairingState.DONE:
            self.stolen.append(game.machine.peer_payload)
            self.took.set()

    def _learn(self, *, verdict: bool) -> None:
        self.verdicts.append(verdict)
        self.learned.set()
