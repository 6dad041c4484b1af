"""The encrypted vault: one directory per burner, every record sealed (docs/protocol.md §15)."""
