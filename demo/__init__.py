"""Lysmore demo (to come)."""
