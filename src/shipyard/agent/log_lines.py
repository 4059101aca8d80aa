"""Log lines as the engine gives them with timestamps, read and filtered: pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

# Docker's RFC 3339 with up to nine fractional digits (trailing zeros dropped), then one space.
TIMED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z (.*)")
Moment = tuple[int, int]  # (seconds since the epoch, nanoseconds)


@dataclass(frozen=True, order=True)
class TimedLine:
    at: Moment
    text: str


def parse_timed(raw: str) -> list[TimedLine]:
    """Each line with its moment; a line without a timestamp (a continuation) takes the one before."""
    lines: list[TimedLine] = []
    last: Moment = (0, 0)
    for line in raw.splitlines():
        found = TIMED.fullmatch(line)
        if found is None:
            lines.append(TimedLine(last, line))
            continue
        stamp, fraction, text = found.groups()
        seconds = int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
        last = (seconds, int((fraction or "0").ljust(9, "0")))
        lines.append(TimedLine(last, text))
    return lines


def seconds_of(moment: Moment) -> float:
    return moment[0] + moment[1] / 1e9


DURATION = re.compile(r"([1-9]\d{0,6})([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int | None:
    """Seconds in '90s', '10m', '2h', '1d'; None when the text is not such a duration."""
    found = DURATION.fullmatch(text.strip())
    return int(found.group(1)) * UNIT_SECONDS[found.group(2)] if found else None
