"""Where a mesh and each sidecar stand in a rotation, and when an anchor rotation may finish (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from isthmus.identity.anchors import CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.csr import generate_key
from isthmus.identity.rotation import (
    CURRENT,
    NEW,
    OLD,
    OTHER,
    Anchors,
    LiveSidecar,
    finish_check,
    judge_sidecar,
    next_generation,
    pending,
    phase,
    recertified,
    retired_name,
    trusts_both,
    trusts_only_new,
)
from isthmus.identity.signing import issue_certificate
from tests.identity.helpers import WEB, Mesh


def _chain(issuer: CertificateAuthority, mesh: Mesh) -> tuple[x509.Certificate, ...]:
    signed = issue_certificate(issuer, generate_key().public_key(), WEB, mesh.clock)
    return (signed.leaf, signed.issuer)


@pytest.fixture
def mesh() -> Mesh:
    return Mesh()


@pytest.fixture
def new_anchor(mesh: Mesh) -> CertificateAuthority:
    return create_trust_anchor(mesh.clock)


def test_roles_of_anchors_outside_and_during_a_rotation(mesh: Mesh, new_anchor: CertificateAuthority) -> None:
    old, new, stranger = mesh.anchor.certificate, new_anchor.certificate, create_trust_anchor(mesh.clock).certificate
    steady = Anchors(old)
    assert (steady.role(old), steady.role(new), steady.signing, steady.target) == (CURRENT, OTHER, old, CURRENT)
    rotating = Anchors(old, new)
    assert (rotating.role(old), rotating.role(new), rotating.role(stranger)) == (OLD, NEW, OTHER)
    assert rotating.signing == new and rotating.target == NEW
    assert rotating.role_of_signer(mesh.issuer.certificate) == OLD
    assert rotating.role_of_signer(create_issuer(new_anchor, "west", mesh.clock).certificate) == NEW


def test_a_sidecar_is_judged_by_its_live_chain_and_bundle(mesh: Mesh, new_anchor: CertificateAuthority) -> None:
    anchors = Anchors(mesh.anchor.certificate, new_anchor.certificate)
    new_issuer = create_issuer(new_anchor, "west", mesh.clock)
    old_side = LiveSidecar("west", "a", _chain(mesh.issuer, mesh), (mesh.anchor.certificate,))
    state = judge_sidecar(old_side, new_issuer.certificate, anchors)
    assert (state.anchor, state.bundle, state.on_current_issuer) == (OLD, (OLD,), False)
    assert not trusts_both(state) and not recertified(state)
    both = (mesh.anchor.certificate, new_anchor.certificate)
    new_side = LiveSidecar("west", "b", _chain(new_issuer, mesh), both)
    state = judge_sidecar(new_side, new_issuer.certificate, anchors)
    assert (state.anchor, state.bundle_text, state.on_current_issuer) == (NEW, "old+new", True)
    assert trusts_both(state) and recertified(state)


def test_a_chain_whose_leaf_the_presented_issuer_did_not_sign_has_no_anchor(mesh: Mesh) -> None:
    other = create_issuer(mesh.anchor, "east", mesh.clock)
    leaf = _chain(mesh.issuer, mesh)[0]
    state = judge_sidecar(
        LiveSidecar("west", "a", (leaf, other.certificate), ()), None, Anchors(mesh.anchor.certificate)
    )
    assert state.anchor == OTHER and not state.on_current_issuer


def test_idle_and_unreadable_sidecars(mesh: Mesh) -> None:
    anchors = Anchors(mesh.anchor.certificate)
    idle = judge_sidecar(LiveSidecar("west", "idle"), mesh.issuer.certificate, anchors)
    broken = judge_sidecar(LiveSidecar("west", "broken", error="no answer"), mesh.issuer.certificate, anchors)
    assert idle.idle and not broken.idle
    # An idle sidecar loads the current files when it first needs them; an unreadable one cannot be vouched for.
    for done in (recertified, trusts_both, trusts_only_new):
        assert pending([idle, broken], done) == [broken]


def test_finish_is_refused_while_anything_chains_to_the_old_anchor(
    mesh: Mesh, new_anchor: CertificateAuthority
) -> None:
    anchors = Anchors(mesh.anchor.certificate, new_anchor.certificate)
    new_issuer = create_issuer(new_anchor, "west", mesh.clock)
    both = (mesh.anchor.certificate, new_anchor.certificate)
    old_pod = judge_sidecar(LiveSidecar("west", "a", _chain(mesh.issuer, mesh), both), mesh.issuer.certificate, anchors)
    new_pod = judge_sidecar(LiveSidecar("east", "b", _chain(new_issuer, mesh), both), new_issuer.certificate, anchors)
    lost = judge_sidecar(LiveSidecar("east", "c", error="timed out"), None, anchors)

    check = finish_check(
        anchors, {"west": mesh.issuer.certificate, "east": new_issuer.certificate}, [old_pod, new_pod, lost]
    )
    assert (check.issuers, check.pods, check.unreadable, check.ready) == (("west",), ("west/a",), ("east/c",), False)
    assert check.refusal() == (
        "cannot finish the anchor rotation: the issuer of cluster west still chains to the old anchor (run `isthmus"
        " identity rotate issuer --all-clusters`); pod west/a still serves a certificate from the old anchor (rotate"
        " their cluster's issuer, or wait for their sidecars to re-certify: `isthmus identity rotate status`); the"
        " certificate of pod east/c could not be read (see `isthmus identity rotate status`); nothing was changed"
    )
    assert finish_check(anchors, {"east": new_issuer.certificate}, [new_pod]).ready
    with pytest.raises(ValueError, match="no anchor rotation"):
        finish_check(Anchors(mesh.anchor.certificate), {}, [])


def test_the_phase_says_what_to_run_next(mesh: Mesh, new_anchor: CertificateAuthority) -> None:
    old, new = mesh.anchor.certificate, new_anchor.certificate
    new_issuer = create_issuer(new_anchor, "west", mesh.clock)
    steady = Anchors(old)
    on_old = LiveSidecar("west", "a", _chain(mesh.issuer, mesh), (old,))
    assert phase(steady, {"west": mesh.issuer.certificate}, [judge_sidecar(on_old, mesh.issuer.certificate, steady)])[
        0
    ].startswith("steady: one trust anchor")

    rotating = Anchors(old, new)
    issuers = {"west": mesh.issuer.certificate}
    assert "wait for west/a" in phase(rotating, issuers, [judge_sidecar(on_old, mesh.issuer.certificate, rotating)])[1]
    trusting = LiveSidecar("west", "a", _chain(mesh.issuer, mesh), (old, new))
    state = judge_sidecar(trusting, mesh.issuer.certificate, rotating)
    assert (
        phase(rotating, issuers, [state])[1]
        == "run `isthmus identity rotate issuer --all-clusters` (issuers from the new anchor)"
    )
    issuers = {"west": new_issuer.certificate}
    assert phase(rotating, issuers, [judge_sidecar(trusting, new_issuer.certificate, rotating)])[1] == "wait for west/a"
    done = LiveSidecar("west", "a", _chain(new_issuer, mesh), (old, new))
    assert phase(rotating, issuers, [judge_sidecar(done, new_issuer.certificate, rotating)])[1] == (
        "run `isthmus identity rotate anchor finish`"
    )


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(None, "1", id="absent"),
        pytest.param("7\n", "8", id="number"),
        pytest.param("garbage", "1", id="garbage-starts-over"),
    ],
)
def test_next_generation(current: str | None, expected: str) -> None:
    assert next_generation(current) == expected


def test_retired_names_differ_by_time_and_certificate(mesh: Mesh) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = retired_name("issuer", mesh.issuer.certificate, when)
    assert name.startswith("issuer-20300102T030405Z-")
    assert name != retired_name("issuer", create_issuer(mesh.anchor, "west", mesh.clock).certificate, when)
