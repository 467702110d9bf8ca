"""The agent re-certifies at once when a rotation bumps its recertify file, and otherwise sleeps until due."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from isthmus.identity.files import write_file
from isthmus.proxy.agent import ExitWatch, supervise
from isthmus.proxy.renewal import RecertifyFile


def _bump(path: Path, value: str) -> None:
    write_file(path, f"{value}\n".encode(), private=False, overwrite=True)


def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_changed_generation_is_wanted_until_answered(tmp_path: Path) -> None:
    path = tmp_path / "recertify"
    watch = RecertifyFile(path)  # absent at start: nothing is wanted
    assert watch.wanted() is None
    _bump(path, "1")
    assert watch.wanted() == "1"
    assert watch.wanted() == "1"  # still wanted: the certificate has not been replaced yet
    watch.answered("1")
    assert watch.wanted() is None
    _bump(path, "1")  # rewritten with the same generation: nothing new to answer
    assert watch.wanted() is None
    _bump(path, "2")
    assert watch.wanted() == "2"


def test_the_generation_in_force_at_start_is_not_wanted(tmp_path: Path) -> None:
    path = tmp_path / "recertify"
    _bump(path, "5")
    watch = RecertifyFile(path)
    assert watch.wanted() is None
    path.unlink()
    assert watch.wanted() is None  # a vanished file asks for nothing new
    _bump(path, "6")
    assert watch.wanted() == "6"


class Recorder:
    """Stands in for the certify child: records when it was asked and hands back a certificate's expiry."""

    def __init__(self, lifetime: timedelta) -> None:
        self.lifetime = lifetime
        self.calls: list[float] = []

    def __call__(self, give_up_after: float) -> str | None:
        self.calls.append(time.monotonic())
        return _rfc3339(datetime.now(UTC) + self.lifetime)


def test_supervise_recertifies_within_a_second_or_two_of_a_bump_and_exits_with_envoy(tmp_path: Path) -> None:
    path = tmp_path / "recertify"
    watch = RecertifyFile(path)
    certify = Recorder(timedelta(hours=24))
    # A real process stands in for Envoy; supervise must return its exit status when it ends.
    envoy = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(30); sys.exit(3)"])
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            supervise(envoy, certify, _rfc3339(datetime.now(UTC) + timedelta(hours=24)), watch)
        )
    )
    try:
        thread.start()
        time.sleep(1.5)
        assert certify.calls == []  # a day-long certificate is not due, and nothing asked
        bumped = time.monotonic()
        _bump(path, "1")
        deadline = time.monotonic() + 5
        while not certify.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert certify.calls and certify.calls[0] - bumped < 2.0, certify.calls
        time.sleep(1.5)
        assert len(certify.calls) == 1  # answered: not asked again
    finally:
        envoy.terminate()
        thread.join(timeout=10)
    assert result == [envoy.wait()]


def test_supervise_renews_when_due(tmp_path: Path) -> None:
    certify = Recorder(timedelta(seconds=2))
    envoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    thread = threading.Thread(
        target=supervise, args=(envoy, certify, _rfc3339(datetime.now(UTC) + timedelta(seconds=2)), None)
    )
    try:
        thread.start()
        time.sleep(3.5)
        # Due at 70% of each two-second certificate (whole seconds in RFC 3339): renewed at least twice.
        assert len(certify.calls) >= 2
    finally:
        envoy.terminate()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_exit_watch_wakes_when_the_process_ends_not_on_a_timer() -> None:
    quick = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(7)"])
    watch = ExitWatch(quick)
    started = time.monotonic()
    assert watch.wait(0.05) is None
    assert watch.wait(10.0) == 7
    assert time.monotonic() - started < 5.0


def test_the_resident_agent_imports_no_crypto_grpc_or_asyncio() -> None:
    code = "import sys, isthmus.proxy.agent; print('\\n'.join(sys.modules))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert not {m for m in loaded if m.split(".")[0] in ("cryptography", "grpc", "asyncio", "ssl")}
