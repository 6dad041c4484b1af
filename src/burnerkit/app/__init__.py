"""The client engine: where sessions, relay clients and the vault meet (the Messenger facade).

The only layer that holds all three, so the faces (CLI, chat UI) hold no crypto and the
order of vault commits and relay ACKs is decided in one place. Its formats and rules are
docs/protocol.md §17.
"""
