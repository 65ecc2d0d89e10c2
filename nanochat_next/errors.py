"""The one exception type for bad input or an unusable environment.

Anything raised as ``UserError`` is shown by the CLI as one line, ``error: <message>``, with exit code 2.
The message says what was wrong and what to do about it. Bugs stay ordinary exceptions with tracebacks.
"""


class UserError(Exception):
    """Bad input or a missing resource that the user can fix; the message says how."""
