"""Kubernetes' syntax rules at their edges: each rule's limits, taken from k8s.io/apimachinery."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from isthmus.model import validate


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        pytest.param(validate.dns1123_label, "a" * 63, True, id="label-63"),
        pytest.param(validate.dns1123_label, "a" * 64, False, id="label-64"),
        pytest.param(validate.dns1123_label, "0-a", True, id="label-digit-first"),
        pytest.param(validate.dns1123_label, "a-", False, id="label-hyphen-last"),
        pytest.param(validate.dns1123_label, "", False, id="label-empty"),
        pytest.param(validate.dns1123_label, "é", False, id="label-unicode"),
        pytest.param(validate.dns1035_label, "0a", False, id="dns1035-digit-first"),
        pytest.param(validate.dns1035_label, "a0", True, id="dns1035"),
        pytest.param(validate.dns1123_subdomain, "a.b-c.d", True, id="subdomain"),
        pytest.param(validate.dns1123_subdomain, "a..b", False, id="subdomain-empty-part"),
        pytest.param(validate.dns1123_subdomain, ".".join(["a" * 63] * 4)[:253], True, id="subdomain-253"),
        pytest.param(validate.dns1123_subdomain, "a" * 254, False, id="subdomain-254"),
        pytest.param(validate.qualified_name, "app.kubernetes.io/name", True, id="key-prefixed"),
        pytest.param(validate.qualified_name, "My_Key.1", True, id="key-mixed"),
        pytest.param(validate.qualified_name, "/name", False, id="key-empty-prefix"),
        pytest.param(validate.qualified_name, "a.io/", False, id="key-empty-name"),
        pytest.param(validate.qualified_name, "a" * 64, False, id="key-name-64"),
        pytest.param(validate.label_value, "", True, id="value-empty"),
        pytest.param(validate.label_value, "v1.2_3-x", True, id="value"),
        pytest.param(validate.label_value, "a b", False, id="value-space"),
        pytest.param(validate.port_name, "http-alt", True, id="port-name"),
        pytest.param(validate.port_name, "a" * 15, True, id="port-name-15"),
        pytest.param(validate.port_name, "a" * 16, False, id="port-name-16"),
        pytest.param(validate.port_name, "a--b", False, id="port-name-double-hyphen"),
        pytest.param(validate.port_name, "-a", False, id="port-name-hyphen-first"),
        pytest.param(validate.port_name, "123", False, id="port-name-no-letter"),
        pytest.param(validate.env_name, "MY_VAR.x-1", True, id="env"),
        pytest.param(validate.env_name, "1VAR", False, id="env-digit-first"),
        pytest.param(validate.env_name, "A=B", False, id="env-equals"),
        pytest.param(validate.port_list, "3306,5432, 8000-8100", True, id="ports"),
        pytest.param(validate.port_list, "1-65535", True, id="ports-full-range"),
        pytest.param(validate.port_list, "0", False, id="ports-zero"),
        pytest.param(validate.port_list, "65536", False, id="ports-above"),
        pytest.param(validate.port_list, "9-8", False, id="ports-backwards"),
        pytest.param(validate.port_list, "80,", False, id="ports-trailing-comma"),
        pytest.param(validate.port_list, "1" * 5000, False, id="ports-huge"),
        pytest.param(validate.port_list, "http", False, id="ports-name"),
    ],
)
def test_rule(rule: Callable[[str], str | None], value: str, ok: bool) -> None:
    problem = rule(value)
    assert (problem is None) == ok, problem
