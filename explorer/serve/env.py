"""The deployment's whole-number settings, read from the environment (EXPLORER_MAX_MODELS, EXPLORER_PER_ADDRESS,
EXPLORER_STATE_SESSIONS, EXPLORER_MMAP_THRESHOLD_KB): a value that is not plain digits leaves the default."""

import os


def whole_number(name, default, minimum=0):
    """The environment variable `name` as a whole number of at least `minimum`, or default when it is unset or
    not plain digits."""
    value = os.environ.get(name, "").strip()
    return max(minimum, int(value)) if value.isdigit() else default
