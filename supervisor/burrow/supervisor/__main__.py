"""``python -m burrow.supervisor``: the ``burrow`` command."""

from __future__ import annotations

from burrow.supervisor.cli import entry

if __name__ == "__main__":
    entry()
