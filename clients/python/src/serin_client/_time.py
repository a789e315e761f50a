"""RFC 3339 timestamp helpers.

``datetime.fromisoformat`` on Python 3.9/3.10 rejects the ``Z`` suffix and
fractional seconds with anything other than 3 or 6 digits, while the server
may emit up to 9 (nanoseconds). These helpers parse such strings themselves.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Union

__all__ = ["parse_timestamp", "format_timestamp", "TimestampLike"]

TimestampLike = Union[datetime, str]

_RFC3339 = re.compile(
    r"""
    ^\s*
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    [Tt ]
    (?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})
    (?:[.,](?P<fraction>\d+))?
    (?P<offset>[Zz]|[+-]\d{2}:?\d{2})?
    \s*$
    """,
    re.VERBOSE,
)


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into a timezone-aware ``datetime``.

    Accepts a ``Z``/``z`` suffix or a numeric ``+HH:MM`` offset, and any
    number of fractional-second digits (truncated to microseconds). A string
    without an offset is taken to be UTC. Raises ``ValueError`` otherwise.
    """
    if not isinstance(value, str):
        raise TypeError(f"timestamp must be a string, not {type(value).__name__}")
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError(f"invalid RFC 3339 timestamp: {value!r}")

    fraction = match.group("fraction") or ""
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0

    offset = match.group("offset")
    if offset is None or offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid UTC offset in timestamp: {value!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone.utc if not delta else timezone(sign * delta)

    second = int(match.group("second"))
    leap = second == 60  # a leap second: datetime cannot hold it
    try:
        parsed = datetime(
            int(match.group("year")),
            int(match.group("month")),
            int(match.group("day")),
            int(match.group("hour")),
            int(match.group("minute")),
            59 if leap else second,
            microsecond,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"invalid RFC 3339 timestamp: {value!r} ({exc})") from None
    if leap:
        parsed = parsed.replace(microsecond=999999)
    return parsed


def format_timestamp(value: datetime) -> str:
    """Format a ``datetime`` as RFC 3339 in UTC, e.g. ``2024-05-01T12:00:00.250000Z``.

    A naive ``datetime`` (no ``tzinfo``) is taken to already be in UTC.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def timestamp_to_wire(value: TimestampLike) -> str:
    """Turn a ``datetime`` or an already formatted string into the wire form."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"timestamp must be a datetime or a string, not {type(value).__name__}")
