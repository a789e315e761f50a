"""Typed views of the objects exchanged with the Serin server.

The canary models (:class:`Deployment`, :class:`PercentageAnswer`,
:class:`ActionAnswer`) replaced plain dicts in the client's return values, so
they are also read-only mappings over the server's JSON (``d["id"]``,
``d.get("config", {})``, ``dict(d)``, ``d == {...}``): code written for the
dicts keeps working. The JSON itself is ``raw`` (for ``json.dumps(d.raw)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Union, cast

from ._time import TimestampLike, parse_timestamp, timestamp_to_wire

__all__ = [
    "ReleaseStatus",
    "Lane",
    "SignalKind",
    "Product",
    "Release",
    "Signal",
    "SignalInput",
    "Health",
    "SignalLike",
    "DeploymentStatus",
    "StepState",
    "Deployment",
    "RolloutState",
    "RolloutStep",
    "RolloutStatus",
    "PercentageAnswer",
    "ActionAnswer",
    "RELEASE_STATUSES",
    "LANES",
    "SIGNAL_KINDS",
    "DEPLOYMENT_STATUSES",
    "FINAL_DEPLOYMENT_STATUSES",
]

ReleaseStatus = Literal["draft", "approved", "released", "cancelled", "rolled_back"]
Lane = Literal["stable", "canary"]
SignalKind = Literal["outcome", "latency", "counter", "gauge"]

RELEASE_STATUSES = ("draft", "approved", "released", "cancelled", "rolled_back")
LANES = ("stable", "canary")
SIGNAL_KINDS = ("outcome", "latency", "counter", "gauge")

DeploymentStatus = Literal["active", "promoting", "rolling_back", "completed", "failed", "paused"]
StepState = Literal["done", "running", "stopped", "pending"]

DEPLOYMENT_STATUSES = ("active", "promoting", "rolling_back", "completed", "failed", "paused")
#: A deployment in one of these has ended: promoted (``completed``) or rolled back (``failed``).
FINAL_DEPLOYMENT_STATUSES = ("completed", "failed")


def _ts(value: Any) -> datetime:
    return parse_timestamp(value)


def _opt_ts(value: Any) -> Optional[datetime]:
    return None if value is None else parse_timestamp(value)


@dataclass(frozen=True)
class Product:
    """A product: something that gets released (``web``, ``billing-api``...)."""

    id: int
    name: str
    description: Optional[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Product":
        """Build from the server's JSON object; unknown keys are ignored."""
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            description=data.get("description"),
            created_at=_ts(data["created_at"]),
            updated_at=_ts(data["updated_at"]),
        )


@dataclass(frozen=True)
class Release:
    """One version of a product moving through draft -> approved -> released."""

    id: int
    product_id: int
    product_name: str
    version: str
    status: ReleaseStatus
    description: Optional[str]
    created_at: datetime
    updated_at: datetime
    released_at: Optional[datetime]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Release":
        """Build from the server's JSON object; unknown keys are ignored."""
        return cls(
            id=int(data["id"]),
            product_id=int(data["product_id"]),
            product_name=str(data["product_name"]),
            version=str(data["version"]),
            status=cast(ReleaseStatus, str(data["status"])),
            description=data.get("description"),
            created_at=_ts(data["created_at"]),
            updated_at=_ts(data["updated_at"]),
            released_at=_opt_ts(data.get("released_at")),
        )

    @property
    def is_released(self) -> bool:
        """True when this release is live (status ``released``)."""
        return self.status == "released"


@dataclass(frozen=True)
class Signal:
    """A measurement recorded against one lane of a release."""

    id: int
    release_id: int
    product_name: str
    version: str
    lane: Lane
    name: str
    kind: SignalKind
    value: float
    tags: Dict[str, str]
    timestamp: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Signal":
        """Build from the server's JSON object; unknown keys are ignored."""
        return cls(
            id=int(data["id"]),
            release_id=int(data["release_id"]),
            product_name=str(data["product_name"]),
            version=str(data["version"]),
            lane=cast(Lane, str(data["lane"])),
            name=str(data["name"]),
            kind=cast(SignalKind, str(data["kind"])),
            value=float(data["value"]),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            timestamp=_ts(data["timestamp"]),
        )


@dataclass
class SignalInput:
    """A signal to send, e.g. in a batch for :meth:`SerinClient.send_signals`.

    ``timestamp`` may be a ``datetime`` (sent as RFC 3339 UTC) or a string
    (sent as is); ``None`` lets the server use the time of receipt.
    """

    product_name: str
    version: str
    lane: Lane
    name: str
    value: float
    kind: SignalKind = "gauge"
    tags: Optional[Mapping[str, str]] = None
    timestamp: Optional[TimestampLike] = None

    def to_dict(self) -> Dict[str, Any]:
        """The JSON body for ``POST /signal`` (optional fields left out when unset)."""
        body: Dict[str, Any] = {
            "product_name": self.product_name,
            "version": self.version,
            "lane": self.lane,
            "name": self.name,
            "value": self.value,
            "kind": self.kind,
        }
        if self.tags is not None:
            body["tags"] = dict(self.tags)
        if self.timestamp is not None:
            body["timestamp"] = timestamp_to_wire(self.timestamp)
        return body


@dataclass(frozen=True)
class Health:
    """Answer of ``GET /api/v1/health``."""

    status: str
    version: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Health":
        return cls(status=str(data.get("status", "")), version=str(data.get("version", "")))


SignalLike = Union[SignalInput, Mapping[str, Any]]


# ------------------------------------------------------------ canary models


def _object(value: Any) -> Dict[str, Any]:
    """A JSON object field as a dict (``null`` or absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


class _RawMapping(Mapping[str, Any]):
    """Read-only mapping access to ``raw``, the JSON object a model was built from.

    Equal to another model of its class with the same JSON, and to any
    mapping holding that JSON (as the dict it replaced was).
    """

    raw: Dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _RawMapping):
            return type(self) is type(other) and self.raw == other.raw
        if isinstance(other, Mapping):
            return self.raw == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable JSON inside, like the dict it replaced


@dataclass(frozen=True)
class RolloutState:
    """A deployment's plan and where it is (``Deployment.rollout``)."""

    #: Index of the current step; ``len(steps)`` once every step is done.
    step: int
    step_started_at: datetime
    #: The plan's steps, as the server sends them (``{"set_weight": 10}``...).
    steps: List[Dict[str, Any]]
    #: The whole plan: ``steps``, ``judges``, ``hooks``, ...
    spec: Dict[str, Any] = field(repr=False)
    #: The multi-target group this rollout advances with, if any.
    group: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False)

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    @property
    def finished(self) -> bool:
        """Every step is done (the deployment may still wait to be promoted)."""
        return self.step >= len(self.steps)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RolloutState":
        spec = _object(data.get("spec"))
        steps = spec.get("steps") or []
        if not isinstance(steps, list):
            raise TypeError("rollout.spec.steps is not a list")
        return cls(
            step=int(data["step"]),
            step_started_at=_ts(data["step_started_at"]),
            steps=[_object(step) for step in steps],
            spec=spec,
            group=_opt_str(data.get("group")),
            raw=dict(data),
        )


@dataclass(frozen=True, eq=False)
class Deployment(_RawMapping):
    """A canary deployment (``GET /api/v1/canary/deployments/{id}``).

    Also a read-only mapping over the server's JSON (see the module notes),
    so ``route_locally(deployment, ...)`` and ``deployment["config"]`` work
    as they did on the dict.
    """

    id: str
    queue_name: str
    tenant_id: Optional[str]
    stable_version: str
    canary_version: str
    status: DeploymentStatus
    #: Why it is paused, failed, or was rolled back.
    status_reason: Optional[str]
    #: The canary's share of traffic now (0-100).
    current_percent: int
    #: The share it is headed for (0-100).
    target_percent: int
    start_time: datetime
    last_update: datetime
    completed_at: Optional[datetime]
    #: Routing strategy, sticky routing, durations, thresholds, ...
    config: Dict[str, Any] = field(repr=False)
    metadata: Dict[str, Any] = field(repr=False)
    #: Raised by every change (optimistic concurrency on the server).
    revision: int
    #: The plan the controller drives, or ``None`` for a deployment moved by hand.
    rollout: Optional[RolloutState]
    raw: Dict[str, Any] = field(repr=False)

    @property
    def is_final(self) -> bool:
        """Ended: promoted (``completed``) or rolled back (``failed``)."""
        return self.status in FINAL_DEPLOYMENT_STATUSES

    @property
    def routing_strategy(self) -> str:
        return str(self.config.get("routing_strategy", "split_queue"))

    @property
    def sticky_routing(self) -> bool:
        return bool(self.config.get("sticky_routing", False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Deployment":
        """Build from the server's JSON object; unknown keys are kept in ``raw`` only."""
        rollout = data.get("rollout")
        return cls(
            id=str(data["id"]),
            queue_name=str(data["queue_name"]),
            tenant_id=_opt_str(data.get("tenant_id")),
            stable_version=str(data["stable_version"]),
            canary_version=str(data["canary_version"]),
            status=cast(DeploymentStatus, str(data["status"])),
            status_reason=_opt_str(data.get("status_reason")),
            current_percent=int(data["current_percent"]),
            target_percent=int(data["target_percent"]),
            start_time=_ts(data["start_time"]),
            last_update=_ts(data["last_update"]),
            completed_at=_opt_ts(data.get("completed_at")),
            config=_object(data.get("config")),
            metadata=_object(data.get("metadata")),
            revision=int(data.get("revision") or 0),
            rollout=None if rollout is None else RolloutState.from_dict(_object(rollout)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class RolloutStep:
    """One step of a rollout as ``GET .../rollout`` shows it."""

    index: int
    #: The step in words: ``"set weight 10%"``, ``"pause until continued"``...
    description: str
    state: StepState
    #: For a running timed pause or analysis: seconds left.
    seconds_left: Optional[int]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RolloutStep":
        left = data.get("seconds_left")
        return cls(
            index=int(data["index"]),
            description=str(data["description"]),
            state=cast(StepState, str(data["state"])),
            seconds_left=None if left is None else int(left),
        )


@dataclass(frozen=True)
class RolloutStatus:
    """A deployment's rollout as people watch it (``GET .../rollout``)."""

    deployment_id: str
    status: DeploymentStatus
    status_reason: Optional[str]
    current_percent: int
    #: Promotes by itself after the last step.
    auto_promotion: bool
    #: What it waits for, in words (``"a person to continue"``), or ``None``.
    waiting_for: Optional[str]
    steps: List[RolloutStep]
    rollout: RolloutState
    #: The latest judgement (once ended: the one that decided), or ``None``.
    judgement: Optional[Dict[str, Any]]
    #: ``healthy``, ``warning``, ``critical`` or ``unknown``.
    health_status: Optional[str]
    raw: Dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_DEPLOYMENT_STATUSES

    @property
    def current_step(self) -> Optional[RolloutStep]:
        """The running step, if one is."""
        return next((s for s in self.steps if s.state == "running"), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RolloutStatus":
        steps = data.get("steps") or []
        if not isinstance(steps, list):
            raise TypeError("steps is not a list")
        judgement = data.get("judgement")
        return cls(
            deployment_id=str(data["deployment_id"]),
            status=cast(DeploymentStatus, str(data["status"])),
            status_reason=_opt_str(data.get("status_reason")),
            current_percent=int(data["current_percent"]),
            auto_promotion=bool(data.get("auto_promotion", False)),
            waiting_for=_opt_str(data.get("waiting_for")),
            steps=[RolloutStep.from_dict(_object(s)) for s in steps],
            rollout=RolloutState.from_dict(_object(data["rollout"])),
            judgement=None if judgement is None else _object(judgement),
            health_status=_opt_str(data.get("health_status")),
            raw=dict(data),
        )


@dataclass(frozen=True, eq=False)
class PercentageAnswer(_RawMapping):
    """The answer to :meth:`SerinClient.set_percentage` (a mapping too, like the dict it replaced)."""

    success: bool
    percentage: int
    updated_at: datetime
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PercentageAnswer":
        return cls(
            success=bool(data["success"]),
            percentage=int(data["percentage"]),
            updated_at=_ts(data["updated_at"]),
            raw=dict(data),
        )


@dataclass(frozen=True, eq=False)
class ActionAnswer(_RawMapping):
    """The answer to promote, rollback and abort (a mapping too, like the dict it replaced)."""

    success: bool
    #: What happened, in words.
    message: str
    #: The reason given, for rollbacks and aborts.
    reason: Optional[str]
    timestamp: datetime
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ActionAnswer":
        return cls(
            success=bool(data["success"]),
            message=str(data["message"]),
            reason=_opt_str(data.get("reason")),
            timestamp=_ts(data["timestamp"]),
            raw=dict(data),
        )
