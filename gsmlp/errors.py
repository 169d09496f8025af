"""The one exception type whose message is written for the user."""


class GsmlpError(Exception):
    """Bad input or an unmet requirement, explained: the message names the file, key or value at fault.

    The CLI prints it as `error: <message>` with no traceback and exits with status 1.
    """


class NotBuiltError(GsmlpError):
    """A command or backend that this installation does not provide (yet)."""
