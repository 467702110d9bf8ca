"""Reading a decoded manifest field by field, recording every problem with its path.

Readers never raise and always return a usable value (the default when the field
is wrong), so one pass finds all problems; a cross-field check first asks
`Problems.any_under` whether its inputs were sound, so one mistake is reported
once. Null counts as absent, as in Kubernetes.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection

Path = tuple[str | int, ...]
Check = Callable[[str], str | None]  # a syntax rule: the problem, or None when fine

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")
_SHOWN_CHARS = 60


def render_path(path: Path) -> str:
    """("spec", "ports", 0, "name") -> spec.ports[0].name; odd keys in brackets, quoted."""
    if len(path) > 16:  # only junk nests this deep; its full path would drown the message
        return render_path(path[:8]) + "…" + render_path(path[-4:]).lstrip(".")
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{quote(part)}]")
    return "".join(out)


def quote(text: str) -> str:
    """A user's string as a message shows it: JSON-quoted, cut short when long."""
    if len(text) > _SHOWN_CHARS:
        return json.dumps(text[:_SHOWN_CHARS], ensure_ascii=False) + f"… ({len(text)} characters)"
    return json.dumps(text, ensure_ascii=False)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def describe(value: object) -> str:
    """`string "abc"`, `integer 5`, `mapping`: enough to recognise the value, never long."""
    name = type_name(value)
    if isinstance(value, str):
        return f"{name} {quote(value)}"
    if isinstance(value, bool):
        return f"{name} {str(value).lower()}"
    if isinstance(value, int):
        return show_int(value) if value.bit_length() > 100 else f"{name} {value}"
    if isinstance(value, float):
        return f"{name} {value!r}"
    return name


def show_int(value: int) -> str:
    # str() of a huge int is slow, and past 4300 digits Python refuses it.
    if value.bit_length() > 100:
        return f"an integer with about {int(value.bit_length() * 0.30103) + 1} digits"
    return str(value)


def expected(what: str, value: object) -> str:
    message = f"expected {what}, got {describe(value)}"
    if what == "string" and isinstance(value, (bool, int, float)):
        message += " (quote it to make it a string)"
    elif "integer" in what and isinstance(value, str) and value.strip().isdecimal() and value.isascii():
        message += " (remove the quotes)"
    return message


class Problems:
    """What is wrong with one document, by path inside it."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, str]] = []
        # Every prefix of every problem's path, so asking about a subtree stays cheap in a long List.
        self._flawed: set[Path] = set()

    def add(self, path: Path, message: str) -> None:
        self.items.append((path, message))
        self._flawed.update(path[:i] for i in range(len(path) + 1))

    def any_under(self, *paths: Path) -> bool:
        return any(path in self._flawed for path in paths)


def _absent_or_empty(value: object) -> bool:
    return value is None or (isinstance(value, (dict, list, str)) and not value)


class Fields:
    """One mapping of a manifest, read against the fields Isthmus knows at that place.

    `known` fields are read through the methods below; `empty_ok` are Kubernetes
    fields that generators such as `kubectl create --dry-run -o yaml` emit empty
    (`strategy: {}`, `creationTimestamp: null`), accepted only when empty; `ignored`
    are mappings the API server ignores on apply (`status`). Anything else is an
    unknown field, as with `kubectl apply --validate=strict`.
    """

    def __init__(
        self,
        problems: Problems,
        value: object,
        path: Path,
        known: Collection[str],
        *,
        empty_ok: Collection[str] = (),
        ignored: Collection[str] = (),
        optional: bool = False,
    ) -> None:
        self.problems = problems
        self.path = path
        self.data: dict[str, object] = {}
        # An absent or broken mapping is reported once, by its parent: not again for each required field.
        self.present = isinstance(value, dict)
        if not isinstance(value, dict):
            # Null is absence for an optional field, but a list entry must be there.
            if value is not None or not optional:
                problems.add(path, expected("mapping", value))
            return
        for key, v in value.items():
            if not isinstance(key, str):
                problems.add(path, f"field names must be strings, got {describe(key)}")
            elif key in known:
                if v is not None:
                    self.data[key] = v
            elif key in empty_ok:
                if not _absent_or_empty(v):
                    problems.add((*path, key), "not supported by Isthmus; only an empty value is accepted")
            elif key in ignored:
                if v is not None and not isinstance(v, dict):
                    problems.add((*path, key), expected("mapping", v))
            else:
                problems.add((*path, key), _unknown(key, known))

    def at(self, key: str) -> Path:
        return (*self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def missing(self, key: str, why: str = "") -> None:
        if self.present:
            self.problems.add(self.at(key), "required" + (f": {why}" if why else ""))

    def string(
        self, key: str, *, required: bool = False, why: str = "", default: str = "", check: Check | None = None
    ) -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.missing(key, why)
            return default
        if not isinstance(value, str):
            self.problems.add(self.at(key), expected("string", value))
            return default
        if (problem := text_problem(value, check)) is not None:
            self.problems.add(self.at(key), problem)
            return default
        return value

    def integer(self, key: str, *, low: int, high: int, default: int, required: bool = False) -> int:
        value = self.data.get(key)
        if value is None:
            if required:
                self.missing(key)
            return default
        return check_integer(self.problems, self.at(key), value, low, high, default)

    def strings(
        self, key: str, *, required: bool = False, why: str = "", check: Check | None = None
    ) -> tuple[str, ...]:
        out: list[str] = []
        for path, item in self.items(key, required=required, why=why):
            if not isinstance(item, str):
                self.problems.add(path, expected("string", item))
            elif (problem := text_problem(item, check)) is not None:
                self.problems.add(path, problem)
            else:
                out.append(item)
        return tuple(out)

    def items(self, key: str, *, required: bool = False, why: str = "") -> list[tuple[Path, object]]:
        """A list field's entries, each with its path."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.missing(key, why)
            return []
        if not isinstance(value, list):
            self.problems.add(self.at(key), expected("list", value))
            return []
        if required and not value:
            self.problems.add(self.at(key), "must not be empty" + (f": {why}" if why else ""))
        return [((*self.at(key), i), item) for i, item in enumerate(value)]

    def mapping(
        self, key: str, known: Collection[str], *, empty_ok: Collection[str] = (), required: bool = False
    ) -> Fields:
        if required and key not in self.data:
            self.missing(key)
        return Fields(self.problems, self.data.get(key), self.at(key), known, empty_ok=empty_ok, optional=True)

    def string_map(self, key: str, *, check_key: Check, check_value: Check | None) -> tuple[tuple[str, str], ...]:
        """A map of strings (labels, annotations), sorted by key so equal manifests parse equal."""
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.problems.add(self.at(key), expected("mapping", value))
            return ()
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.problems.add(self.at(key), f"keys must be strings, got {describe(k)}")
                continue
            path = (*self.at(key), k)
            if (problem := check_key(k)) is not None:
                self.problems.add(path, f"invalid key: {problem}")
            elif not isinstance(v, str):
                hint = ' (write "" for an empty value)' if v is None else ""
                self.problems.add(path, expected("string", v) + hint)
            elif (problem := text_problem(v, check_value)) is not None:
                self.problems.add(path, problem)
            else:
                out[k] = v
        return tuple(sorted(out.items()))


def text_problem(value: str, check: Check | None) -> str | None:
    """What is wrong with a string field's value, with the value shown; None when fine."""
    # YAML's and JSON's \u escapes can make lone surrogates, which no file, process or database takes.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return f"must be valid Unicode text, without lone surrogates, got {quote(value)}"
    if check is not None and (problem := check(value)) is not None:
        return f"{problem}, got {quote(value)}"
    return None


def check_integer(problems: Problems, path: Path, value: object, low: int, high: int, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, expected("integer", value))
        return default
    if not low <= value <= high:
        problems.add(path, f"must be between {low} and {high}, got {show_int(value)}")
        return default
    return value


def _unknown(key: str, known: Collection[str]) -> str:
    # Matching a huge key against each known name would be slow and suggest nothing useful.
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7) if len(key) <= 64 else []
    if close:
        return f'unknown field; did you mean "{close[0]}"?'
    return "unknown field (Isthmus supports here: " + (", ".join(sorted(known)) or "nothing") + ")"
