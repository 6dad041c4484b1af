"""Message stores behind one protocol: memory (reference), SQLite (default)."""
