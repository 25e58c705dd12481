"""The one exception type the command line turns into a single line and exit code 2."""


class UsageError(ValueError):
    """Bad input from the user (a setting, a file, a model name). ``str(err)`` is one line meant for the user."""
