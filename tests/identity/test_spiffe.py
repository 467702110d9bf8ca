"""SPIFFE IDs: building, parsing, and the syntax each refusal names."""

from __future__ import annotations

import re

import pytest

from isthmus.identity.errors import SpiffeIdError
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId, check_trust_domain, workload_id


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("spiffe://cluster.local/ns/default/sa/web", ("cluster.local", "default", "web"), id="default"),
        pytest.param(
            "spiffe://example.org/ns/kube-system/sa/a.b-c", ("example.org", "kube-system", "a.b-c"), id="dots"
        ),
        pytest.param("spiffe://td_1/ns/n1/sa/s", ("td_1", "n1", "s"), id="underscore-domain"),
    ],
)
def test_parse_valid(uri: str, expected: tuple[str, str, str]) -> None:
    sid = SpiffeId.parse(uri)
    assert (sid.trust_domain, sid.namespace, sid.service_account) == expected
    assert sid.uri == uri == str(sid)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        pytest.param("https://cluster.local/ns/default/sa/web", "must start with 'spiffe://'", id="scheme"),
        pytest.param("SPIFFE://cluster.local/ns/default/sa/web", "lowercase", id="uppercase-scheme"),
        pytest.param("spiffe://Cluster.Local/ns/default/sa/web", "lowercase letters", id="uppercase-domain"),
        pytest.param("spiffe:///ns/default/sa/web", "trust domain is empty", id="empty-domain"),
        pytest.param("spiffe://cluster.local:443/ns/default/sa/web", "port", id="port"),
        pytest.param("spiffe://u@cluster.local/ns/default/sa/web", "user info", id="userinfo"),
        pytest.param("spiffe://cluster.local/ns/default/sa/web?x=1", "query", id="query"),
        pytest.param("spiffe://cluster.local/ns/default/sa/web#f", "fragment", id="fragment"),
        pytest.param("spiffe://cluster.local/ns/default/sa/w%2Fb", "percent", id="percent"),
        pytest.param("spiffe://cluster.local", "/ns/<namespace>/sa/<service-account>", id="no-path"),
        pytest.param("spiffe://cluster.local/", "/ns/<namespace>/sa/<service-account>", id="root-path"),
        pytest.param("spiffe://cluster.local/ns/default/sa/web/", "/ns/<namespace>/sa/<service-account>", id="slash"),
        pytest.param("spiffe://cluster.local/ns/default/sa/../sa/web", "/ns/<namespace>", id="dotdot"),
        pytest.param("spiffe://cluster.local/sa/web/ns/default", "/ns/<namespace>", id="swapped"),
        pytest.param("spiffe://cluster.local/ns/Default/sa/web", "namespace 'Default'", id="bad-namespace"),
        pytest.param("spiffe://cluster.local/ns/default/sa/-web", "service account '-web'", id="bad-sa"),
        pytest.param("spiffe://cluster.local/ns//sa/web", "namespace ''", id="empty-namespace"),
        pytest.param("spiffe://cluster.local/ns/" + "a" * 64 + "/sa/web", "63 characters", id="long-namespace"),
        pytest.param("spiffe://c.l/ns/d/sa/" + "a" * 2100, "longer than 2048", id="too-long"),
    ],
)
def test_parse_refuses(uri: str, problem: str) -> None:
    with pytest.raises(SpiffeIdError) as err:
        SpiffeId.parse(uri)
    assert problem in str(err.value)
    assert "SPIFFE ID" in str(err.value)


def test_parse_can_require_a_trust_domain() -> None:
    assert SpiffeId.parse("spiffe://a.org/ns/x/sa/y", trust_domain="a.org").trust_domain == "a.org"
    with pytest.raises(SpiffeIdError, match=re.escape("belongs to trust domain 'b.org', expected 'a.org'")):
        SpiffeId.parse("spiffe://b.org/ns/x/sa/y", trust_domain="a.org")


def test_workload_id_defaults_to_cluster_local() -> None:
    assert DEFAULT_TRUST_DOMAIN == "cluster.local"
    assert workload_id("shop", "frontend").uri == "spiffe://cluster.local/ns/shop/sa/frontend"
    assert workload_id("shop", "frontend", "example.org").uri == "spiffe://example.org/ns/shop/sa/frontend"
    with pytest.raises(SpiffeIdError, match="service account 'a/b'"):
        workload_id("shop", "a/b")


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param("", id="empty"),
        pytest.param("-a.org", id="leading-dash"),
        pytest.param("a.org.", id="trailing-dot"),
        pytest.param("a org", id="space"),
        pytest.param("a" * 256, id="too-long"),
    ],
)
def test_bad_trust_domains(domain: str) -> None:
    with pytest.raises(SpiffeIdError, match="trust domain"):
        check_trust_domain(domain)
