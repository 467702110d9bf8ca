"""Property tests: no input makes parsing fail with anything but a clear ManifestErrors, and dump/parse round-trips.

Example counts are set so the whole file runs in well under 20 s while still
trying thousands of inputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from isthmus.model.errors import ManifestError, ManifestErrors
from isthmus.model.manifests import dump_resource, parse_manifests, parse_objects
from isthmus.model.resources import Resource
from tests.model.manifest_samples import SAMPLES, to_yaml

# Spaces and a colon in the name catch any message that mangles or drops it.
SOURCE = "in put/my: file.yaml"


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples,
        deadline=None,
        # Explaining a failure re-runs it hundreds of times; the shrunk example is enough here.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def outcome(parse: Callable[[], list[Resource]]) -> list[Resource] | None:
    """The resources, or None after checking that the failure is a well-formed ManifestErrors."""
    try:
        return parse()
    except ManifestErrors as e:
        assert e.errors, "raised with no problems"
        for error in e.errors:
            assert isinstance(error, ManifestError)
            assert error.source == SOURCE
            line = str(error)
            assert line.startswith(SOURCE + ":"), line
            assert line.isprintable(), line  # one line, nothing that moves the cursor
        assert str(e).startswith(SOURCE)
        return None


def assert_round_trips(resources: list[Resource]) -> None:
    dumped = [dump_resource(r) for r in resources]
    assert parse_objects(dumped, SOURCE) == resources
    assert parse_manifests(to_yaml(*dumped), SOURCE) == resources


# --- random YAML-ish text ------------------------------------------------------------------------

YAML_PUNCTUATION = [*":-[]{},&*!|>'\"#%@?~=<\\\n\n\n\t  ", "---\n", "  ", "- ", ": ", "<<: ", "!!", "\u2028"]
WORDS = ["apiVersion", "kind", "metadata", "name", "spec", "v1", "apps/v1", "Deployment", "Service", "List", "items"]

yaml_ish = st.lists(
    st.one_of(
        st.sampled_from(YAML_PUNCTUATION),
        st.sampled_from(WORDS),
        st.text(max_size=6),
        st.integers(-(10**6), 10**6).map(str),
    ),
    max_size=60,
).map("".join)


def valid_texts() -> st.SearchStrategy[str]:
    return st.sampled_from([to_yaml(make()) for make in SAMPLES.values()] + [json.dumps(SAMPLES["Service"]())])


@st.composite
def mangled_text(draw: st.DrawFn) -> str:
    """A valid manifest's text with a few slices cut, repeated or replaced: near-miss YAML."""
    text = draw(valid_texts())
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        insert = draw(st.one_of(st.just(""), st.just(text[i:j] * 2), yaml_ish, st.text(max_size=4)))
        text = text[:i] + insert + text[j:]
    return text


@fuzz(1000)
@given(st.one_of(yaml_ish, mangled_text()))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    resources = outcome(lambda: parse_manifests(text, SOURCE))
    if resources:
        assert_round_trips(resources)


# --- random structures, as YAML and as already-decoded objects ---------------------------------------

FIELDS = sorted(
    {
        *WORDS,
        *("namespace", "labels", "annotations", "selector", "ports", "port", "targetPort", "protocol", "type"),
        *("clusterIP", "replicas", "matchLabels", "matchExpressions", "template", "containers", "command"),
        *("args", "env", "value", "valueFrom", "containerPort", "image", "serviceAccountName", "status"),
        *("isthmus.io/inject", "config.isthmus.io/opaque-ports", "creationTimestamp", "strategy", "resources"),
    }
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-70000, 70000),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["v1", "apps/v1", "TCP", "UDP", "None", "enabled", "8080", "http", "web", "1-65535"]),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8))


def structures(key: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)),
        max_leaves=10,
    )


def objects(key: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly-plausible objects, a real kind and apiVersion over a random body, or anything at all."""
    body = structures(key)

    @st.composite
    def plausible(draw: st.DrawFn) -> dict[Any, Any]:
        obj = draw(st.dictionaries(key, body, max_size=2))
        obj["apiVersion"] = draw(st.sampled_from(["v1", "apps/v1", "x"]))
        obj["kind"] = draw(st.sampled_from([*SAMPLES, "List", "Pod"]))
        for field in ("metadata", "spec", "items"):
            if draw(st.booleans()):
                obj[field] = draw(body)
        return obj

    return st.lists(st.one_of(body, plausible()), min_size=1, max_size=3)


@fuzz(400)
@given(objects(keys))
def test_any_structure_as_yaml_parses_or_fails_cleanly(docs: list[Any]) -> None:
    text = to_yaml(*docs)
    resources = outcome(lambda: parse_manifests(text, SOURCE))
    if resources:
        assert_round_trips(resources)


odd_keys = st.one_of(keys, st.integers(), st.none(), st.booleans(), st.tuples(st.integers()))


@fuzz(500)
@given(st.one_of(objects(odd_keys), st.just([10**5000])))
def test_any_decoded_object_parses_or_fails_cleanly(docs: list[Any]) -> None:
    # Non-string keys, tuples and integers too long to print: what YAML cannot produce.
    outcome(lambda: parse_objects(docs, SOURCE))


@fuzz(150)
@given(st.text(max_size=80))
def test_any_namespace_argument_parses_or_fails_cleanly(namespace: str) -> None:
    resources = outcome(lambda: parse_manifests(to_yaml(SAMPLES["Deployment"]()), SOURCE, namespace=namespace))
    if resources is not None:
        assert resources[0].meta.namespace == namespace


# --- mutations of valid manifests ------------------------------------------------------------------


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


replacements = st.one_of(
    scalars,
    structures(keys),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 65536, 70000, 1001, 2**31, 2**63, 10**100]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30),  # any Unicode, astral and RTL included
    st.integers(64, 70_000).map(lambda n: "a" * n),  # names, labels and values past every length limit
)


@st.composite
def mutated(draw: st.DrawFn) -> list[Any]:
    make = draw(st.sampled_from(list(SAMPLES.values())))
    doc: Any = make()
    if draw(st.booleans()):
        doc = {"apiVersion": "v1", "kind": "List", "items": [doc, SAMPLES["Namespace"]()]}
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)))
        *parents, last = path
        node = doc
        for p in parents:
            node = node[p]
        op = draw(st.sampled_from(["delete", "replace", "rename", "duplicate", "wrap"]))
        if op == "delete":
            del node[last]
        elif op == "replace":
            node[last] = draw(replacements)
        elif op == "rename" and isinstance(node, dict):
            node[draw(keys)] = node.pop(last)
        elif op == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(node[last]))
        else:
            node[last] = [node[last]]
    return [doc]


@fuzz(1500)
@given(mutated())
def test_mutated_manifests_parse_or_fail_cleanly(docs: list[Any]) -> None:
    from_objects = outcome(lambda: parse_objects(docs, SOURCE))
    from_yaml = outcome(lambda: parse_manifests(to_yaml(*docs), SOURCE))
    assert from_objects == from_yaml  # the text path adds nothing and loses nothing
    if from_objects:
        assert_round_trips(from_objects)


# --- valid manifests round-trip ---------------------------------------------------------------------

LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + "0123456789"


def joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


# Built from alphabets rather than st.from_regex, which is far slower to draw from.
dns_label = joined(st.sampled_from(LOWER), st.text(ALNUM + "-", max_size=10), st.sampled_from(ALNUM))
label_values = st.one_of(
    st.just(""), joined(st.sampled_from(ALNUM + "ABC"), st.text(ALNUM + "-_.XYZ", max_size=10), st.sampled_from(ALNUM))
)
label_maps = st.dictionaries(
    st.one_of(dns_label, joined(dns_label, st.just(".io/"), dns_label)), label_values, max_size=4
)
port_names = joined(st.sampled_from(LOWER), st.text(ALNUM, max_size=6), st.sampled_from(["", "-a", "-b2"]))
protocols = st.sampled_from(["TCP", "UDP"])
process_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=10)
env_names = joined(st.sampled_from("ABCXYZ_"), st.text("ABCXYZ_019", max_size=8))


@st.composite
def valid_deployment(draw: st.DrawFn) -> dict[str, Any]:
    selector = draw(label_maps.filter(bool))
    names = draw(st.lists(dns_label, min_size=1, max_size=3, unique=True))
    pod_port_names = iter(draw(st.lists(port_names, min_size=6, max_size=6, unique=True)))

    def container(name: str) -> dict[str, Any]:
        ports = draw(st.lists(st.integers(1, 65535), max_size=2))
        return {
            "name": name,
            **({"image": draw(st.text(min_size=1, max_size=10))} if draw(st.booleans()) else {}),
            "command": [draw(process_text.filter(bool)), *draw(st.lists(process_text, max_size=2))],
            "args": draw(st.lists(process_text, max_size=2)),
            "env": [{"name": n, "value": draw(process_text)} for n in draw(st.lists(env_names, max_size=2))],
            "ports": [{"containerPort": p, "name": next(pod_port_names), "protocol": draw(protocols)} for p in ports],
        }

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": draw(dns_label), "namespace": draw(dns_label), "labels": draw(label_maps)},
        "spec": {
            "replicas": draw(st.integers(0, 1000)),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**draw(label_maps), **selector},
                    "annotations": {
                        "isthmus.io/inject": draw(st.sampled_from(["enabled", "disabled"])),
                        "note": draw(st.text(max_size=20)),
                    },
                },
                "spec": {"serviceAccountName": draw(dns_label), "containers": [container(n) for n in names]},
            },
        },
    }


@st.composite
def valid_service(draw: st.DrawFn) -> dict[str, Any]:
    numbers = draw(st.lists(st.tuples(st.integers(1, 65535), protocols), min_size=1, max_size=4, unique=True))
    names = draw(st.lists(dns_label, min_size=len(numbers), max_size=len(numbers), unique=True))
    targets = st.one_of(st.integers(1, 65535), port_names)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": draw(dns_label), "annotations": {"config.isthmus.io/opaque-ports": "5432,8000-8100"}},
        "spec": {
            "selector": draw(label_maps),
            "ports": [
                {"name": n, "port": p, "protocol": proto, "targetPort": draw(targets)}
                for n, (p, proto) in zip(names, numbers, strict=True)
            ],
        },
    }


@fuzz(100)
@given(st.lists(st.one_of(valid_deployment(), valid_service()), min_size=1, max_size=3))
def test_valid_manifests_parse_and_round_trip(docs: list[dict[str, Any]]) -> None:
    keys = [(d["kind"], d["metadata"].get("namespace", "default"), d["metadata"]["name"]) for d in docs]
    assume(len(set(keys)) == len(keys))
    resources = parse_manifests(to_yaml(*docs), SOURCE)
    assert len(resources) == len(docs)
    assert_round_trips(resources)
