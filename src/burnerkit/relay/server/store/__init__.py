"""Message stores behind one protocol: memory (reference), SQLite (default), and write-behind over either."""
