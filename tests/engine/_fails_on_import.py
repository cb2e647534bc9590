"""A module whose import raises, so a worker named in it cannot be found (see test_bad_input)."""

raise RuntimeError("this module is broken on purpose")
