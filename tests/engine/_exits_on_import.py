"""A module that calls sys.exit() when imported, like a script without a __main__ guard.

Used by test_bad_input to check that a job naming a worker in here cannot stop the node.
"""

import sys

sys.exit(3)
