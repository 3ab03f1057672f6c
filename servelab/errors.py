"""The user-facing error: one clear line and a non-zero exit, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad flag, unreachable target, unknown run).

    `detail`: lines printed after the one error line (a launched engine's log tail)."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail
