"""Errors that map to exit codes. Raised anywhere below the CLI; the CLI turns them into a
one-line message (no traceback) and the exit code of design.md."""
from __future__ import annotations

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_INPUT = 2
EXIT_INCOMPLETE = 3


class ReplaygateError(Exception):
    exit_code = EXIT_INPUT

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        fld = f"{self.field}: " if self.field else ""
        return f"{where}{fld}{self.message}"

    def __reduce__(self):
        # keyword-only fields: the default exception pickling would lose them (and fail), and
        # errors cross process boundaries in the parallel import
        return (_rebuild, (type(self), self.message, self.file, self.line, self.field))


def _rebuild(cls, message, file, line, field):
    return cls(message, file=file, line=line, field=field)


class InputError(ReplaygateError):
    """Bad config, dataset, trace file or flag (exit 2)."""
    exit_code = EXIT_INPUT


class ConfigError(InputError):
    pass


class RunIncomplete(ReplaygateError):
    """The run could not be completed: provider unreachable, auth failure, error budget
    exceeded, offline cache miss (exit 3)."""
    exit_code = EXIT_INCOMPLETE


def did_you_mean(word: object, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices`` to a misspelt name, else ''."""
    import difflib

    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
