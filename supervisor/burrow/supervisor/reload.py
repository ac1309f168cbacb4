"""Reload machinery of the Supervisor: SIGHUP, re-planning, live pushes with acks, rolling.

SIGHUP asks the reload callback for new worker config; running workers either get it in place
(live reload: ``Reconfigure``, then ``reload.done`` once every worker acknowledged it) or are
rolled one slot at a time, going back to the old generation if a new worker fails before Ready.
Ingress rules files with a ``reload`` period are re-planned on a timer and pushed when changed.
``Reloader`` is a mixin of ``Supervisor`` (arbiter.py), which owns the state declared here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from burrow.common.logfmt import event

from . import systemd
from .listeners import BindRequest

if TYPE_CHECKING:
    # Annotations only: run.py's one-process mode uses Reloaded/ReloadRefused without loading
    # ZeroMQ (loop, registry) or the spawn machinery.
    from .arbiter import Slot
    from .loop import Loop
    from .registry import RegistryBroker
    from .spawn import WorkerProcess, WorkerTemplate

log = logging.getLogger("burrow.supervisor")


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload callback returns: the new worker config and the listeners it wants."""

    config: bytes
    binds: list[BindRequest]


@dataclass(frozen=True, slots=True)
class ReloadRefused:
    """Why a reload does not happen: logged as ``name`` with ``fields``; the old config serves."""

    name: str
    fields: dict[str, str]


ReloadFn = Callable[[], Reloaded | ReloadRefused | None]


class Reloader:
    """SIGHUP reloads and periodic ingress reloads; mixed into ``Supervisor``."""

    # Set up by Supervisor.__init__ (arbiter.py).
    binds: list[BindRequest]
    count: int
    generation: int
    loop: Loop
    slots: list[Slot]
    _template: WorkerTemplate | None
    _broker: RegistryBroker | None
    _by_identity: dict[bytes, WorkerProcess]
    _stopping: bool
    _reload_fn: ReloadFn | None
    _live_reload: bool
    _periodic: tuple[float, ReloadFn] | None
    _acks: set[bytes]
    _roll_queue: list[int]
    _roll_new: WorkerProcess | None
    _roll_previous: tuple[int, WorkerTemplate] | None
    _reload_pending: bool

    def _spawn(self, index: int) -> WorkerProcess | None:
        raise NotImplementedError  # Supervisor's

    def _schedule_restart(self, slot: Slot) -> None:
        raise NotImplementedError  # Supervisor's

    def handle_sighup(self) -> None:
        """Reload the config and roll workers one slot at a time."""
        if self._stopping:
            return
        if self._roll_queue or self._roll_new is not None or self._acks:
            self._reload_pending = True
            return
        self._reload()

    def _acked(self, identity: bytes | None) -> None:
        if not self._acks or identity not in self._acks:
            return
        self._acks.discard(identity)
        if not self._acks:
            self._reload_finished()

    def _count_reload(self, ok: bool) -> None:
        """The admin endpoint's burrow_reloads counter (when it is on)."""
        book = getattr(self, "book", None)
        if book is not None:
            if ok:
                book.reloads_ok += 1
            else:
                book.reloads_failed += 1

    def _reload_finished(self) -> None:
        self._count_reload(True)
        event(log, logging.INFO, "reload.done", generation=self.generation, workers=self.count)
        systemd.sd_notify("READY=1")
        if self._reload_pending:
            self._reload_pending = False
            self._reload()

    def _reload(self) -> None:
        assert self._template is not None
        systemd.notify_reloading()
        if self._reload_fn is None:
            result: Reloaded | ReloadRefused | None = Reloaded(self._template.config, self.binds)
        else:
            result = self._reload_fn()
        if result is None:
            self._count_reload(False)
            event(log, logging.ERROR, "reload.failed", action="keeping the running config")
            systemd.sd_notify("READY=1")
            return
        if isinstance(result, ReloadRefused):
            if result.name == "reload.failed":
                self._count_reload(False)
            event(log, logging.ERROR if result.name == "reload.failed" else logging.INFO,
                  result.name, **result.fields)  # fmt: skip
            systemd.sd_notify("READY=1")
            return
        if result.binds != self.binds:
            self._count_reload(False)
            event(
                log,
                logging.ERROR,
                "reload.rejected",
                reason="the set of listeners changed",
                fix="restart burrow to bind new listeners",
            )
            systemd.sd_notify("READY=1")
            return
        if self._live_reload and self._broker is not None:
            self._push(result.config, "reload.start")
            return
        self._roll_previous = (self.generation, self._template)
        self._template = dataclasses.replace(self._template, config=result.config)
        self.generation += 1
        event(log, logging.INFO, "reload.start", generation=self.generation)
        self._roll_queue = list(range(self.count))
        self._roll_next()

    def _push(self, config: bytes, name: str) -> None:
        """Send new plans to every running worker; reload.done once all have acknowledged."""
        from burrow.ipc.messages import Reconfigure  # lazily: one-process mode has no bus

        assert self._template is not None and self._broker is not None
        self._template = dataclasses.replace(self._template, config=config)
        self.generation += 1
        event(log, logging.INFO, name, generation=self.generation, mode="live")
        self._acks = set(self._by_identity)
        for identity in self._acks:
            self._broker.send_to(identity, Reconfigure(self.generation, config))
        if not self._acks:
            self._reload_finished()

    def _reread_rules(self) -> None:
        """``ingresses[].reload``: re-plan from the held config; push when the rules changed."""
        assert self._periodic is not None
        period, fn = self._periodic
        if self._stopping:
            return
        self.loop.call_later(period, self._reread_rules)
        if self._roll_queue or self._roll_new is not None or self._acks:
            return  # a reload is under way; the next period looks again
        result = fn()
        if isinstance(result, ReloadRefused):
            self._count_reload(False)
            event(log, logging.ERROR, result.name, **result.fields)
        elif (
            result is not None
            and self._template is not None
            and self._broker is not None
            and result.config != self._template.config
        ):
            systemd.notify_reloading()
            self._push(result.config, "ingress.reload")

    def _roll_next(self) -> None:
        if not self._roll_queue:
            self._roll_previous = None
            self._count_reload(True)
            event(log, logging.INFO, "reload.done", generation=self.generation)
            systemd.sd_notify("READY=1")
            if self._reload_pending:
                self._reload_pending = False
                self._reload()
            return
        slot = self.slots[self._roll_queue.pop(0)]
        if slot.restart is not None:
            slot.restart.cancel()
            slot.restart = None
        self._roll_new = self._spawn(slot.index)
        if self._roll_new is None:
            self._abort_reload(f"could not start the new worker-{slot.index}")

    def _abort_reload(self, reason: str) -> None:
        if self._roll_previous is not None:
            self.generation, self._template = self._roll_previous
        failed = self._roll_new
        self._roll_new, self._roll_previous = None, None
        self._roll_queue.clear()
        self._reload_pending = False
        self._count_reload(False)
        event(
            log, logging.ERROR, "reload.failed", reason=reason, action="keeping the running config"
        )
        systemd.sd_notify("READY=1")
        if failed is not None:
            slot = self.slots[failed.index]
            if slot.current is None:
                self._schedule_restart(slot)
