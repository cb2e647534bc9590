"""Lysmore licensing (to come)."""
