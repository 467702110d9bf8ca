"""Reading sidecars' admin APIs: the fake fails the way real sidecars do, and the real reader says why it could not read."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from isthmus.platform.local.paths import StatePaths
from isthmus.viz import admin_worker
from isthmus.viz.admin import AdminReply, PodRef, StaticAdminScraper
from isthmus.viz.admin_local import LocalAdminScraper

WEB = PodRef("local", "default", "web-1")
DB = PodRef("local", "default", "db-1")
GONE = PodRef("local", "default", "gone-1")


def test_the_fake_answers_known_pages_and_fails_like_a_sidecar_otherwise() -> None:
    fake = StaticAdminScraper({WEB: {"/certs": "{}", "/ready": "LIVE"}, DB: {"/certs": "{}"}}, {GONE: "timed out"})
    replies = fake.scrape([WEB, DB, GONE, PodRef("local", "default", "new-1")], ["/certs", "/ready"])
    assert replies[WEB] == AdminReply(WEB, {"/certs": "{}", "/ready": "LIVE"})
    # A partial answer is no answer: readers never mix pages of a half-read sidecar in.
    assert replies[DB] == AdminReply(DB, error="GET /ready answered 404")
    assert replies[GONE] == AdminReply(GONE, error="timed out")
    assert "connection refused" in str(replies[PodRef("local", "default", "new-1")].error)
    assert [r.ok for r in replies.values()] == [True, False, False, False]
    assert fake.asked == [((WEB, DB, GONE, PodRef("local", "default", "new-1")), ("/certs", "/ready"))]
    assert str(WEB) == "default/web-1"


def test_without_a_running_mesh_every_sidecar_is_unscraped_with_the_reason(tmp_path: Path) -> None:
    scraper = LocalAdminScraper(StatePaths(tmp_path / "home"), {WEB: "web-netns"})
    replies = scraper.scrape([WEB, DB], ["/certs"])
    assert replies[WEB].error == "no local mesh is running (start one with `isthmus up`)"
    assert replies[DB].error == "it has no running sidecar"


def test_the_worker_names_a_pod_whose_network_namespace_is_gone() -> None:
    job = {"targets": [{"key": 3, "netns": "isthmus-test-no-such-netns"}], "paths": ["/certs"], "timeout": 1}
    assert admin_worker.run(job) == {
        "replies": [{"key": 3, "error": "its network namespace is gone (the pod stopped)"}]
    }


def test_the_worker_refuses_a_job_that_is_not_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("targets: []"))
    assert admin_worker.main() == 2
    assert "the job on stdin is not JSON" in capsys.readouterr().err
