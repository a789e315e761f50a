"""Typed views of the objects exchanged with the Serin server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Literal, Mapping, Optional, Union, cast

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
    "RELEASE_STATUSES",
    "LANES",
    "SIGNAL_KINDS",
]

ReleaseStatus = Literal["draft", "approved", "released", "cancelled", "rolled_back"]
Lane = Literal["stable", "canary"]
SignalKind = Literal["outcome", "latency", "counter", "gauge"]

RELEASE_STATUSES = ("draft", "approved", "released", "cancelled", "rolled_back")
LANES = ("stable", "canary")
SIGNAL_KINDS = ("outcome", "latency", "counter", "gauge")


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
