"""The sans-IO end-to-end core: identities, handshake, ratchet, envelopes and sessions.

Nothing here does I/O, reads a clock or draws randomness by itself: time comes in
as ``now`` and randomness as a :class:`burnerkit.crypto.rng.Random`, so every rule can be
tested synchronously and every transcript frozen as a vector. docs/protocol.md §4-§8.
"""
