"""The client engine: where sessions, relay clients and the vault meet (the Messenger facade)."""
