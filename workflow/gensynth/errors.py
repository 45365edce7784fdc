"""The one exception type that scripts turn into a one-line error and exit code 2."""


class GensynthError(Exception):
    """Bad input (a file, a flag, a config key): the message names it and what was expected."""
