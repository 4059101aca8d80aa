"""What `shipyard build` shows of BuildKit's plain log: the Dockerfile steps and how each ended."""

from __future__ import annotations

import pytest

from shipyard.cli.build_cmd import BuildPrinter
from shipyard.secrets.masking import forget_registered_secrets, register_secret

LOG = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:2b97d8a37a5f306ef5731bdf1aa91906fc54cc5ee67f8181474d3170486eccb5
#1 DONE 0.0s
#8 [auth] sharing credentials for 127.0.0.1:5000
#3 ERROR: 127.0.0.1:5000/web:cache: not found
#4 [1/3] COPY rootfs/ /
#4 CACHED
#5 [builder 2/3] RUN --mount=type=secret,id=npm npm ci
#5 12.3 added 812 packages
#5 DONE 14.2s
#6 [3/3] RUN echo token=hunter2-token
#6 ERROR: executor failed running [/bin/sh -c exit 1]: exit code: 1
"""


@pytest.fixture(autouse=True)
def _forget_masks() -> None:
    forget_registered_secrets()


def test_only_steps_and_their_outcome_are_printed_masked(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret("hunter2-token")
    printer = BuildPrinter(quiet=False)

    for line in LOG.splitlines():
        printer.log_line(line)

    shown = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert shown == [
        "#4 [1/3] COPY rootfs/ /",
        "#4 CACHED",
        "#5 [builder 2/3] RUN --mount=type=secret,id=npm npm ci",
        "#5 DONE 14.2s",
        "#6 [3/3] RUN echo token=***",
        "#6 ERROR: executor failed running [/bin/sh -c exit 1]: exit code: 1",
    ]


def test_json_mode_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    printer = BuildPrinter(quiet=True)
    printer.phase("building")
    for line in LOG.splitlines():
        printer.log_line(line)

    assert capsys.readouterr().out == ""
