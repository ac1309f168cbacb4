"""TaskSet: the per-connection tasks of one service, kept referenced and cancellable together.

A deadline is a timer that cancels the task with the message ``DEADLINE``, instead of
``asyncio.timeout``, which costs a Timeout object, ``current_task()`` and a running-loop lookup
(a ``getpid()`` syscall on 3.11) on every connection. The coroutine tells a missed deadline from
a shutdown with :func:`deadline_missed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

DEADLINE = "deadline"


def deadline_missed(exc: asyncio.CancelledError) -> bool:
    """True when the cancellation came from the task's deadline, not from a shutdown."""
    return exc.args[:1] == (DEADLINE,)


class TaskSet:
    """Tasks started for connections; :meth:`cancel_all` stops the ones still running."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, None],
        deadline: float | None = None,
    ) -> asyncio.Task[None]:
        """Run ``coro``; past ``deadline`` seconds it is cancelled with DEADLINE."""
        task = loop.create_task(coro)
        tasks = self._tasks
        tasks.add(task)
        if deadline is None:
            task.add_done_callback(tasks.discard)
            return task
        timer = loop.call_later(deadline, task.cancel, DEADLINE)

        def done(t: asyncio.Task[Any]) -> None:
            timer.cancel()
            tasks.discard(t)

        task.add_done_callback(done)
        return task

    def cancel_all(self) -> None:
        """Cancel every task still running."""
        for task in list(self._tasks):
            task.cancel()

    def __len__(self) -> int:
        return len(self._tasks)
