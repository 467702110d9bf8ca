"""Errors that Isthmus reports to its user as a message, never as a traceback.

    IsthmusError                 base: anything the CLI prints as "error: <message>"
    ├── ManifestError            one problem at one place in one manifest input
    └── ManifestErrors           every problem found in one input (what parsing raises)

Parsing collects all problems before raising, so a user fixes a file in one
go; `ManifestErrors` carries them in input order as `ManifestError`s, each of
which renders as a single line naming the source.
"""

from __future__ import annotations

from collections.abc import Sequence


class IsthmusError(Exception):
    """Base of errors whose message is meant for the user as it stands."""


class ManifestError(IsthmusError):
    """One problem in a manifest input: where it is and what is wrong.

    Renders as `SOURCE[:LINE:COLUMN]: document N (Kind name): field.path: message`,
    leaving out the parts that are unknown (a YAML syntax error has a line but no
    field path; a problem with the input as a whole has neither).
    """

    def __init__(
        self,
        source: str,
        message: str,
        *,
        document: int | None = None,
        kind: str = "",
        name: str = "",
        path: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.source = source
        self.message = message
        self.document = document  # 1-based, counting empty documents too, as an editor would
        self.kind = kind
        self.name = name
        self.path = path
        self.line = line  # 1-based
        self.column = column  # 1-based
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        parts = [where]
        if self.document is not None:
            what = " ".join(p for p in (self.kind, self.name) if p)
            parts.append(f"document {self.document}" + (f" ({what})" if what else ""))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return one_line(": ".join(parts))

    def __repr__(self) -> str:
        return f"ManifestError({str(self)!r})"


class ManifestErrors(IsthmusError):
    """All problems found in one manifest input; nothing of that input should be applied."""

    # A CLI user can act on a screenful; the rest stays available in `errors`.
    SHOWN = 100

    def __init__(self, source: str, errors: Sequence[ManifestError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [str(e) for e in self.errors[: self.SHOWN]]
        hidden = len(self.errors) - self.SHOWN
        if hidden > 0:
            lines.append(f"{self.source}: … and {hidden} more problems")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ManifestErrors({self.source!r}, {len(self.errors)} problems)"


def one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters so a message stays one terminal line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
