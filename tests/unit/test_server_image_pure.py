"""The lighttpd test image's pure parts: reading ldd's output and the config."""

from __future__ import annotations

import pytest

from shipyard.errors import DockerError
from shipyard.lab.server_image import (
    lighttpd_config,
    parse_ldd,
)

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd5a1f2000)
\tlibpcre2-8.so.0 => /lib/x86_64-linux-gnu/libpcre2-8.so.0 (0x00007f0c1c5a0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1c3bf000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1c6b2000)
"""


def test_ldd_output_gives_each_library_and_the_loader_but_not_the_vdso() -> None:
    assert parse_ldd(LDD_OUTPUT) == [
        "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_a_static_binary_has_no_libraries() -> None:
    assert parse_ldd("\tstatically linked\n") == []


def test_a_missing_library_is_an_error_naming_it() -> None:
    with pytest.raises(DockerError, match=r"libxxhash\.so\.0 was not found"):
        parse_ldd(LDD_OUTPUT + "\tlibxxhash.so.0 => not found\n")


def test_an_unreadable_ldd_line_is_an_error() -> None:
    with pytest.raises(DockerError, match="cannot read"):
        parse_ldd("\tsomething odd here\n")


def test_config_reads_host_and_port_from_the_environment_and_keeps_connections_alive() -> None:
    config = lighttpd_config("/www")
    assert 'server.document-root = "/www"' in config
    assert "server.bind = env.HOST" in config
    assert "server.port = env.PORT" in config
    assert "server.max-keep-alive-requests = 1000000" in config
