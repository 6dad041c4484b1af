"""The ``burner`` command line: thin Typer faces over :mod:`burnerkit.app`."""
