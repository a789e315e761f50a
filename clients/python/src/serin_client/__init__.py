"""Python client for Serin, the canary release server.

::

    from serin_client import SerinClient, NotFoundError

    client = SerinClient("http://localhost:8080")
    try:
        version = client.get_latest_stable_version("web")
    except NotFoundError as err:
        print(err.code)  # PRODUCT_NOT_FOUND or NO_STABLE_RELEASE

Canary job routing, locally (same answer as ``client.route``)::

    from serin_client import route_locally

    deployment = client.get_deployment("canary_...")
    route_locally(deployment, "emails", key="user-42")["queue"]  # "emails" or "emails:canary"
"""

from ._time import format_timestamp, parse_timestamp
from ._version import __version__
from .client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, CanaryPyClient, SerinClient
from .errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    ServerError,
    ValidationError,
)
from .models import (
    LANES,
    RELEASE_STATUSES,
    SIGNAL_KINDS,
    Health,
    Lane,
    Product,
    Release,
    ReleaseStatus,
    Signal,
    SignalInput,
    SignalKind,
)
from .routing import (
    BUCKETS,
    ROUTING_STRATEGIES,
    LocalRouter,
    bucket,
    in_canary,
    lane_target,
    route_locally,
)

__all__ = [
    "__version__",
    "SerinClient",
    "CanaryPyClient",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "SerinError",
    "ValidationError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "ServerError",
    "SerinConnectionError",
    "SerinTimeoutError",
    "Product",
    "Release",
    "Signal",
    "SignalInput",
    "Health",
    "ReleaseStatus",
    "Lane",
    "SignalKind",
    "RELEASE_STATUSES",
    "LANES",
    "SIGNAL_KINDS",
    "parse_timestamp",
    "format_timestamp",
    "BUCKETS",
    "ROUTING_STRATEGIES",
    "bucket",
    "in_canary",
    "lane_target",
    "route_locally",
    "LocalRouter",
]
