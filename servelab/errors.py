"""The user-facing error: one clear line and a non-zero exit, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad flag, unreachable target, unknown run)."""
