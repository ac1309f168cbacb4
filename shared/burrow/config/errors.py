"""The one error type every config front door raises: where it is, what is wrong, how to fix it."""

from __future__ import annotations


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
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.problem} (fix: {self.fix})"

    def __repr__(self) -> str:
        return f"ConfigError({str(self)!r})"
