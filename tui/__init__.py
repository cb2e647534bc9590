"""Lysmore tui (to come)."""
