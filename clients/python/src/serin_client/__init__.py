"""Python client for Serin, the canary release server.

::

    from serin_client import SerinClient, NotFoundError

    client = SerinClient()  # $SERIN_URL (default http://127.0.0.1:8080), key from $SERIN_API_KEY
    try:
        version = client.get_latest_stable_version("web")
    except NotFoundError as err:
        print(err.code)  # PRODUCT_NOT_FOUND or NO_STABLE_RELEASE

Configuration: ``SerinClient()`` reads ``SERIN_URL`` (default
``http://127.0.0.1:8080``) and ``SERIN_API_KEY`` (sent as
``Authorization: Bearer``); explicit arguments win
(``SerinClient("http://serin:8080", api_key="srn_...")``, and ``api_key=""``
for no key at all). Connections are kept alive; a 429 is waited out per its
``Retry-After`` for up to ``max_retry_wait`` seconds (default 30) per call.

Rollouts, typed::

    d = client.start_rollout("web", "1.4", "1.5", [{"set_weight": 10},
                             {"pause": {"duration": "1m"}}, {"set_weight": 100}],
                             auto_promotion=True)
    client.rollout_status(d).waiting_for
    client.watch(d, timeout=900).status  # "completed" or "failed"

Canary job routing, locally (same answer as ``client.route``)::

    from serin_client import route_locally

    deployment = client.get_deployment("canary_...")
    route_locally(deployment, "emails", key="user-42")["queue"]  # "emails" or "emails:canary"
"""

from ._time import format_timestamp, parse_timestamp
from ._version import __version__
from .client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_TIMEOUT,
    CanaryPyClient,
    SerinClient,
)
from .errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    ServerError,
    ValidationError,
    WatchTimeoutError,
)
from .models import (
    DEPLOYMENT_STATUSES,
    FINAL_DEPLOYMENT_STATUSES,
    LANES,
    RELEASE_STATUSES,
    SIGNAL_KINDS,
    ActionAnswer,
    Deployment,
    DeploymentStatus,
    Health,
    Lane,
    PercentageAnswer,
    Product,
    Release,
    ReleaseStatus,
    RolloutState,
    RolloutStatus,
    RolloutStep,
    Signal,
    SignalInput,
    SignalKind,
    StepState,
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
    "DEFAULT_MAX_RETRY_WAIT",
    "SerinError",
    "ValidationError",
    "AuthError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "RateLimitedError",
    "ServerError",
    "SerinConnectionError",
    "SerinTimeoutError",
    "WatchTimeoutError",
    "Product",
    "Release",
    "Signal",
    "SignalInput",
    "Health",
    "Deployment",
    "RolloutState",
    "RolloutStep",
    "RolloutStatus",
    "PercentageAnswer",
    "ActionAnswer",
    "ReleaseStatus",
    "DeploymentStatus",
    "StepState",
    "Lane",
    "SignalKind",
    "RELEASE_STATUSES",
    "LANES",
    "SIGNAL_KINDS",
    "DEPLOYMENT_STATUSES",
    "FINAL_DEPLOYMENT_STATUSES",
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
