"""Errors a user can cause. The CLI prints them as one line and exits non-zero, never with a traceback."""


class GenomenetError(Exception):
    """An error in user input (a file, a record, a config value); its message names the input and what to do."""

    exit_code: int = 2


class InputFileError(GenomenetError, ValueError):
    """A malformed or unreadable input file; the message names the file and the record or line."""


class ConfigError(GenomenetError, ValueError):
    """A config value that cannot work; raised before any training starts."""
