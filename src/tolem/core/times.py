"""Times as people give them: one without an offset is a wall-clock time in some zone."""

from datetime import datetime
from zoneinfo import ZoneInfo


def in_zone(value: datetime, zone: str) -> datetime:
    """`value` itself when it carries an offset; otherwise that wall-clock time in `zone`."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


def parse_moment(text: str, zone: str) -> datetime:
    """An ISO 8601 date or date-time; one without an offset is read in `zone`.

    A bare date means its midnight, so `--since 2026-11-25 --until 2026-11-26` is that day.
    """
    return in_zone(datetime.fromisoformat(text.strip()), zone)
