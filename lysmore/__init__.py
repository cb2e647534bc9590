"""The ``lysmore`` command line: a thin shell that composes engine, tui, demo and licensing."""
