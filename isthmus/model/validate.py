"""Kubernetes' syntax rules for names, label keys and values, port names, and Isthmus' annotations.

Each rule takes a string and returns what is wrong with it, or None. The rules
and limits are Kubernetes' own (k8s.io/apimachinery/pkg/util/validation), so a
manifest Isthmus accepts is one the Kubernetes API server accepts too.
"""

from __future__ import annotations

import re

from isthmus.model.resources import (
    ANNOTATION_INBOUND_POLICY,
    ANNOTATION_INJECT,
    ANNOTATION_OPAQUE_PORTS,
    INBOUND_POLICIES,
)

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
_DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PORT_NAME = re.compile(r"[-a-z0-9]+")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_PORT_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")

# Kubernetes' TotalAnnotationSizeLimitB: keys and values of one object together.
ANNOTATIONS_MAX_BYTES = 256 * 1024


def dns1123_label(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return (
            "must be a lowercase RFC 1123 label: a-z, 0-9 and '-', starting and ending"
            " with a letter or digit (e.g. 'my-name' or '123-abc')"
        )
    return None


def dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return (
            "must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending"
            " with a letter or digit (e.g. 'example.com')"
        )
    return None


def dns1035_label(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1035_LABEL.fullmatch(value):
        return (
            "must be a lowercase RFC 1035 label: a-z, 0-9 and '-', starting with a letter"
            " and ending with a letter or digit (e.g. 'my-name' or 'abc-123')"
        )
    return None


def qualified_name(value: str) -> str | None:
    """A label or annotation key: `name` or `prefix/name`, the prefix a DNS subdomain."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix or "/" in prefix:
            return "must be a name with at most one '/' prefix (e.g. 'app' or 'example.com/app')"
        if (problem := dns1123_subdomain(prefix)) is not None:
            return f"prefix {problem}"
    if not name:
        return "name part must not be empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            "name part must be A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter"
            " or digit (e.g. 'MyName', 'my.name' or '123-abc')"
        )
    return None


def label_value(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return (
            "must be empty or A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter"
            " or digit (e.g. 'MyValue' or 'my_value')"
        )
    return None


def port_name(value: str) -> str | None:
    """An IANA service name, which is what Kubernetes requires of container port names."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _PORT_NAME.fullmatch(value):
        return "must contain only a-z, 0-9 and '-'"
    if value.startswith("-") or value.endswith("-") or "--" in value:
        return "must not begin or end with '-' or contain '--'"
    if not any("a" <= c <= "z" for c in value):
        return "must contain at least one letter (a-z)"
    return None


def env_name(value: str) -> str | None:
    if not _ENV_NAME.fullmatch(value):
        return "must be letters, digits, '_', '-' and '.', not starting with a digit (e.g. 'MY_ENV.VAR' or 'my-env')"
    return None


def process_text(value: str) -> str | None:
    """Text that becomes a process argument or environment value on the local platform."""
    if "\0" in value:
        return "must not contain a NUL character (a process argument or environment value cannot hold one)"
    return None


def port_list(value: str) -> str | None:
    """A comma-separated list of ports and ranges, e.g. "3306,5432,8000-8100"."""
    for part in value.split(","):
        match = _PORT_RANGE.fullmatch(part.strip())
        if match is None or not 1 <= int(match.group(1)) <= int(match.group(2) or match.group(1)) <= 65535:
            return "must be a comma-separated list of ports (1-65535) and ranges (low-high), e.g. 3306,8000-8100"
    return None


def isthmus_annotation(key: str, value: str) -> str | None:
    """Values of the annotations Isthmus acts on; other annotations may hold anything."""
    if key == ANNOTATION_INJECT and value not in ("enabled", "disabled"):
        return "must be enabled or disabled"
    if key == ANNOTATION_OPAQUE_PORTS and value.strip():
        return port_list(value)
    if key == ANNOTATION_INBOUND_POLICY and value not in INBOUND_POLICIES:
        return f"must be one of {', '.join(INBOUND_POLICIES)}"
    return None
