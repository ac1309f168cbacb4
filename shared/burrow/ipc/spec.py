"""WorkerSpec: everything a worker process needs at boot, sent once by the supervisor.

Wire: the whole pipe content, read to EOF, is one msgpack map (a msgspec Struct, field names as
keys)::

    supervisor --(pipe, --spec-fd N)--> worker:  msgpack(WorkerSpec)  EOF

The fd numbers inside are valid in the worker because the supervisor passed them with
``pass_fds``; ``plans`` is opaque bytes here: msgpack of ``burrow.config.planset.PlanSet``, the
plans the supervisor built (workers never read config files or plan again).
See docs/architecture.md, Processes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# Configs are small; this bound only stops a broken pipe writer from growing the worker unbounded.
MAX_SPEC_SIZE = 64 * 1024 * 1024

Fd = Annotated[int, msgspec.Meta(ge=0)]


class SpecError(ValueError):
    """The spec bytes are not a valid WorkerSpec (a supervisor/worker version mismatch or a bug)."""


class ListenerFd(msgspec.Struct, frozen=True):
    """One inherited listening socket of this worker."""

    service: str
    role: str
    network: str
    address: str
    fd: Fd


class WorkerSpec(msgspec.Struct, frozen=True):
    """Boot parameters of one worker process."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    count: Annotated[int, msgspec.Meta(ge=1)]
    generation: Annotated[int, msgspec.Meta(ge=0)]
    plans: bytes
    source: str | None
    listeners: list[ListenerFd]
    inbox_fd: Annotated[int, msgspec.Meta(ge=-1)]
    outbox_fds: dict[int, Fd]
    registry_endpoint: str
    updates_endpoint: str
    lifeline_fd: Fd
    runtime_dir: str
    log_level: str = "info"
    log_format: str = "text"
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0)] = 1.0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WorkerSpec)


def encode_spec(spec: WorkerSpec) -> bytes:
    """Encode a spec for the bootstrap pipe."""
    return _encoder.encode(spec)


def decode_spec(data: bytes) -> WorkerSpec:
    """Decode the bootstrap pipe's content; raises SpecError."""
    if len(data) > MAX_SPEC_SIZE:
        raise SpecError(f"worker spec of {len(data)} bytes exceeds MAX_SPEC_SIZE={MAX_SPEC_SIZE}")
    try:
        spec = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SpecError(f"invalid worker spec: {exc}") from exc
    if spec.index >= spec.count:
        raise SpecError(f"invalid worker spec: index {spec.index} is not below count {spec.count}")
    return spec
