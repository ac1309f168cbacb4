"""The one error type every config front door raises: where it is, what is wrong, how to fix it."""

from __future__ import annotations


def describe(problem: str, fix: str, key: str | None, file: str | None, line: int | None) -> str:
    """One line for a person: ``file:line: key: problem (fix: fix)``, parts left out if unknown."""
    where = ""
    if file:
        where = file + (f":{line}" if line else "") + ": "
    elif line:
        where = f"line {line}: "
    prefix = f"{key}: " if key else ""
    return f"{where}{prefix}{problem} (fix: {fix})"


class ConfigError(Exception):
    """A configuration problem a person can act on.

    ``key`` is a dotted path such as ``services[0].handler.metadata.entrypoint``; ``line`` is
    1-based when the front door can tell (YAML always, TOML best effort, never the command line).
    """

    def __init__(
        self,
        problem: str,
        *,
        fix: str,
        key: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.key = key
        self.file = file
        self.line = line

    def located(self, *, file: str | None = None, line: int | None = None) -> ConfigError:
        """Fill in file and line where they are still unknown; returns self."""
        if self.file is None:
            self.file = file
        if self.line is None:
            self.line = line
        return self

    def __str__(self) -> str:
        return describe(self.problem, self.fix, self.key, self.file, self.line)

    def __repr__(self) -> str:
        return f"ConfigError({str(self)!r})"
