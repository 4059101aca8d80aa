"""The maintenance page that carries an operator's message, and the rules such a message follows."""

from __future__ import annotations

import html
import re

from shipyard.errors import ConfigError

MAX_MESSAGE = 500
# One line of printable text: it lands in an HTML page that haproxy serves with every 503.
MESSAGE = re.compile(r"[^\x00-\x1f\x7f]{1,500}")


def check_message(message: str) -> str:
    """The message as given, or ConfigError naming what is wrong with it."""
    if MESSAGE.fullmatch(message) is None:
        raise ConfigError(
            f"--message must be one line of 1-{MAX_MESSAGE} printable characters; shorten it or drop "
            "the line breaks."
        )
    return message


def page_with_message(message: str) -> str:
    """The default maintenance page with the message in place of its generic line, HTML-escaped."""
    text = html.escape(check_message(message))
    return (
        "<!doctype html><html><head><title>Down for maintenance</title></head>"
        f"<body><h1>Down for maintenance</h1><p>{text}</p></body></html>"
    )
