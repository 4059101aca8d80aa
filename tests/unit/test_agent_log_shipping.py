"""Log requests on an agent with fakes: what is read, filtered, masked, batched, followed and stopped."""

from __future__ import annotations

from test_agent_fakes import FakeController, FakeHost, desired_app
from test_agent_loop import Clock

from shipyard.agent.log_lines import TimedLine, parse_duration, parse_timed
from shipyard.agent.log_shipping import LogShipper
from shipyard.agent.ports import LocalApp
from shipyard.fleet_api.schemas.logs import DesiredLogRequest
from shipyard.secrets.masking import forget_registered_secrets, register_secret

WALL = 1_800_000_000.0


def at(second: int, nanos: int = 0) -> tuple[int, int]:
    return (int(WALL) + second, nanos)


def host_with_lines() -> FakeHost:
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True)})
    host.containers = {"web": {"web-r2-blue": "web", "web-r2-worker": "worker"}}
    host.log_lines = {
        "web-r2-blue": [TimedLine(at(-30), "GET / 200"), TimedLine(at(-5), "GET /slow 500")],
        "web-r2-worker": [TimedLine(at(-10), "job 7 done")],
    }
    return host


def shipper(controller: FakeController, host: FakeHost, clock: Clock) -> LogShipper:
    return LogShipper(
        controller,
        host,
        clock=clock,
        wall_clock=lambda: WALL + clock.now - 1000.0,
        sleep=clock.sleep,
        threaded=False,
    )


def request(**options: object) -> DesiredLogRequest:
    return DesiredLogRequest.model_validate({"id": 4, "app": "web", **options})


def test_parse_timed_reads_docker_s_timestamps_with_any_fraction_and_keeps_continuations() -> None:
    raw = "2026-11-29T22:00:00.5Z first\n2026-11-29T22:00:00.123456789Z second\ncontinued\n"
    lines = parse_timed(raw)
    assert [line.text for line in lines] == ["first", "second", "continued"]
    assert lines[0].at[1] == 500_000_000 and lines[1].at[1] == 123_456_789
    assert lines[2].at == lines[1].at and lines[0].at > lines[1].at
    assert parse_duration("10m") == 600 and parse_duration("2h") == 7200 and parse_duration("ten") is None


def test_a_request_sends_every_container_s_lines_oldest_first_then_says_it_finished_once() -> None:
    controller, clock, host = FakeController(), Clock(), host_with_lines()
    ship = shipper(controller, host, clock)
    ship.start([request(tail=50)])
    ship.start([request(tail=50)])  # the same id again: answered already
    assert controller.log_batches == [
        (4, ["GET / 200", "[worker] job 7 done", "GET /slow 500"], False, ""),
        (4, [], True, ""),
    ]


def test_grep_process_and_since_filter_and_secrets_are_masked_before_the_filter() -> None:
    controller, clock, host = FakeController(), Clock(), host_with_lines()
    host.log_lines["web-r2-blue"].append(TimedLine(at(-1), "password=hunter2-secret 500"))
    register_secret("hunter2-secret")
    try:
        shipper(controller, host, clock).start([request(grep="500|hunter2", process="web", since=20)])
    finally:
        forget_registered_secrets()
    [(_, lines, _, _), _done] = controller.log_batches
    assert lines == ["GET /slow 500", "password=*** 500"]
    assert all(name == "web-r2-blue" for name, _since, _tail in host.log_reads)
    assert host.log_reads[0][1] == WALL - 20


def test_an_app_not_running_here_or_a_bad_pattern_is_answered_finished_with_why() -> None:
    controller, clock = FakeController(), Clock()
    shipper(controller, FakeHost(), clock).start([request()])
    assert controller.log_batches == [(4, [], True, "web does not run on this host.")]
    controller.log_batches.clear()
    shipper(controller, host_with_lines(), clock).start([request(id=5, grep="(")])
    [(request_id, lines, finished, message)] = controller.log_batches
    assert (request_id, lines, finished) == (5, [], True) and "missing )" in message


def test_a_followed_request_sends_only_new_lines_until_its_time_passes() -> None:
    controller, clock, host = FakeController(), Clock(), host_with_lines()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 2:
            host.log_lines["web-r2-blue"].append(TimedLine(at(int(clock.now - 1000)), "GET /new 200"))

    ship = shipper(controller, host, clock)
    ship.sleep = sleep
    ship.start([request(process="web", follow=5, tail=1)])
    sent = [line for _, lines, _, _ in controller.log_batches for line in lines]
    assert sent == ["GET /slow 500", "GET /new 200"]  # the tail, then only what came after
    assert controller.log_batches[-1][2] is True and 4 <= len(clock.slept) <= 6


def test_a_closed_request_stops_the_follow_at_once_without_a_finished_batch() -> None:
    controller, clock, host = FakeController(), Clock(), host_with_lines()
    controller.closed_logs.add(4)
    shipper(controller, host, clock).start([request(follow=600)])
    assert len(controller.log_batches) == 1 and clock.slept == []


def test_the_loop_starts_log_requests_from_the_desired_state() -> None:
    from test_agent_loop import make_loop

    controller, clock, host = FakeController(), Clock(), host_with_lines()
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, host, clock)
    loop.logs.threaded = False
    original = controller.desired

    def desired(version: int | None = None, wait: float = 0.0):  # type: ignore[no-untyped-def]
        return original(version, wait).model_copy(update={"logs": [request()]})

    controller.desired = desired  # type: ignore[method-assign]
    loop.run_once()
    assert controller.log_batches[-1] == (4, [], True, "")


def test_the_host_s_records_are_read_in_the_loop_s_thread_and_only_the_engine_in_the_request_s() -> None:
    import threading

    controller, clock, host = FakeController(), Clock(), host_with_lines()
    threads: list[str] = []
    original = host.log_sources

    def log_sources(app: str, process: str | None) -> dict[str, str]:
        threads.append(threading.current_thread().name)  # the host's SQLite store is bound to its thread
        return original(app, process)

    host.log_sources = log_sources  # type: ignore[method-assign]
    ship = shipper(controller, host, clock)
    ship.threaded = True
    ship.start([request()])
    for thread in threading.enumerate():
        if thread.name == "logs-4":
            thread.join(timeout=10)
    assert threads == [threading.current_thread().name]
    assert controller.log_batches[-1][2] is True  # the thread finished the request
