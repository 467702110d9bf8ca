"""YAML text -> plain documents (dicts, lists, str, int, float, bool, None), safely.

Built from PyYAML's event stream rather than `yaml.safe_load_all` because that
recurses (deep nesting ends in RecursionError), expands alias bombs without
limit, silently keeps the last of duplicate keys and turns some scalars into
dates. Here each of those becomes a `YamlProblem` with its field path and line,
and nesting and size are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from isthmus.model.manifest_fields import Path, describe, quote

MAX_DEPTH = 64
# Counted after alias expansion: validation walks aliased values once per use.
MAX_VALUES = 100_000
# Far past any number a manifest holds, and short of Python's 4300-digit limit on int().
_MAX_INT_CHARS = 100

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
# Kubernetes keeps these as the strings they look like; PyYAML would make dates of
# them, or (for "=") fail outright.
_AS_STRING = {_STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", _MERGE}


@dataclass(frozen=True)
class YamlProblem:
    path: Path
    message: str
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class YamlDocument:
    index: int  # 1-based
    value: object
    problems: list[YamlProblem] = field(default_factory=list)
    # Too deep or too large: `value` is incomplete and must not be validated.
    abandoned: bool = False


@dataclass(frozen=True)
class YamlSyntaxError:
    document: int
    message: str
    line: int | None
    column: int | None


def read_documents(text: str) -> tuple[list[YamlDocument], YamlSyntaxError | None]:
    """Every complete document before the first syntax error, and that error if any."""
    documents: list[YamlDocument] = []
    index = 0
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # already rejects unprintable characters
        loader.get_event()  # StreamStart
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # DocumentStart
            index += 1
            document = _Builder(loader, index).build()
            loader.get_event()  # DocumentEnd
            documents.append(document)
        return documents, None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = "invalid YAML: " + (e.problem or "syntax error")
        if e.context:
            message += f" ({e.context})"
        return documents, YamlSyntaxError(
            max(index, 1), message, mark.line + 1 if mark else None, mark.column + 1 if mark else None
        )
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        what = f"character U+{e.character:04X}" if isinstance(e.character, int) else "byte"
        return documents, YamlSyntaxError(max(index, 1), f"invalid YAML: {what} is not allowed", line, column)
    except yaml.YAMLError as e:  # any other PyYAML failure still gets reported, not raised
        return documents, YamlSyntaxError(max(index, 1), f"invalid YAML: {e}", None, None)
    finally:
        if loader is not None:
            loader.dispose()


_NO_KEY = object()  # the mapping awaits a key
_MERGE_KEY = object()  # the key was "<<": its value is merged in
_BAD_KEY = object()  # the key was rejected; its value is read and dropped


@dataclass
class _Open:
    """A mapping or sequence whose end event has not come yet."""

    value: dict[str, object] | list[object]
    path: Path
    anchor: str | None
    start: yaml.Mark
    key: object = _NO_KEY
    key_mark: yaml.Mark | None = None
    merges: list[dict[str, object]] = field(default_factory=list)
    first_seen: dict[str, int] = field(default_factory=dict)  # key -> line, for duplicates
    height: int = 0
    size: int = 1

    def child_path(self) -> Path:
        if isinstance(self.value, list):
            return (*self.path, len(self.value))
        if isinstance(self.key, str):
            return (*self.path, self.key)
        return self.path


class _Builder:
    """Builds one document's value from events, without recursion."""

    def __init__(self, loader: yaml.SafeLoader, index: int) -> None:
        self.loader = loader
        self.doc = YamlDocument(index, None)
        self.anchors: dict[str, tuple[object, int, int]] = {}  # name -> (value, size, height)
        self.size = 0
        self.stack: list[_Open] = []

    def problem(self, path: Path, message: str, mark: yaml.Mark | None) -> None:
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        self.doc.problems.append(YamlProblem(path, message, line, column))

    def abandon(self, path: Path, message: str, mark: yaml.Mark | None, depth: int) -> None:
        """Record why, then read and discard events until the document's root closes."""
        self.problem(path, message, mark)
        self.doc.abandoned = True
        self.doc.value = None
        while depth > 0:
            event = self.loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1

    def build(self) -> YamlDocument:
        while True:
            event = self.loader.get_event()
            path = self.stack[-1].child_path() if self.stack else ()
            mark = event.start_mark
            if isinstance(event, yaml.CollectionStartEvent):
                if len(self.stack) >= MAX_DEPTH:
                    self.abandon(path, f"nested more than {MAX_DEPTH} levels deep", mark, len(self.stack) + 1)
                    return self.doc
                if event.tag not in (None, "!", _MAP if isinstance(event, yaml.MappingStartEvent) else _SEQ):
                    self.problem(path, f"unsupported YAML tag {quote(event.tag)}", mark)
                container: dict[str, object] | list[object] = {} if isinstance(event, yaml.MappingStartEvent) else []
                self.stack.append(_Open(container, path, event.anchor, mark))
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                done = self.stack.pop()
                mark = done.start  # problems with a mapping or list point at where it begins
                value, size, height = self.close(done), done.size, done.height + 1
                new = 1  # its contents were counted as they arrived
                if done.anchor is not None:
                    self.anchors[done.anchor] = (value, size, height)
                tag = None
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in self.anchors:
                    self.problem(
                        path,
                        f"alias *{event.anchor} refers to no anchor defined before it"
                        " (an alias cannot refer to the mapping or list that contains it)",
                        mark,
                    )
                    value, size, height, tag = None, 1, 0, None
                    new = 1
                else:
                    value, size, height = self.anchors[event.anchor]
                    new = size
                    tag = None
                    if len(self.stack) + height > MAX_DEPTH:
                        self.abandon(path, f"nested more than {MAX_DEPTH} levels deep", mark, len(self.stack))
                        return self.doc
            elif isinstance(event, yaml.ScalarEvent):
                value, tag = self.scalar(event, path)
                size, height, new = 1, 0, 1
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1, 0)
            else:  # the parser emits nothing else inside a document
                raise AssertionError(f"unexpected YAML event {event}")
            self.size += new
            if self.size > MAX_VALUES:
                self.abandon(
                    path,
                    f"document too large: more than {MAX_VALUES} values (counting aliases expanded)",
                    mark,
                    len(self.stack),
                )
                return self.doc
            if not self.stack:
                self.doc.value = value
                return self.doc
            self.add(self.stack[-1], value, tag, size, height, mark)

    def scalar(self, event: yaml.ScalarEvent, path: Path) -> tuple[object, str]:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        # YAML 1.1 base-60 numbers ("1:20" is 80): Kubernetes' YAML library keeps them as strings.
        if tag in _AS_STRING or (tag in (_INT, _FLOAT) and event.tag is None and ":" in event.value):
            return event.value, _STR if tag in (_INT, _FLOAT) else tag
        if tag == _INT and len(event.value) > _MAX_INT_CHARS:
            self.problem(path, "integer too large", event.start_mark)
            return None, _NULL
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            if tag == _NULL:
                return None, tag
            if tag == _BOOL:
                return self.loader.bool_values[event.value.lower()], tag
            if tag == _INT:
                return self.loader.construct_yaml_int(node), tag
            if tag == _FLOAT:
                return self.loader.construct_yaml_float(node), tag
        # ValueError from int()/float(); the others because PyYAML's constructors index the text unchecked.
        except (ValueError, IndexError, KeyError):
            self.problem(path, f"not a valid {tag.rsplit(':', 1)[-1]}: {quote(event.value)}", event.start_mark)
            return event.value, _STR
        self.problem(path, f"unsupported YAML tag {quote(tag)}", event.start_mark)
        return event.value, _STR

    def add(self, parent: _Open, value: object, tag: str | None, size: int, height: int, mark: yaml.Mark) -> None:
        parent.size += size
        parent.height = max(parent.height, height)
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        if parent.key is _NO_KEY:
            if tag == _MERGE:
                parent.key = _MERGE_KEY
            elif isinstance(value, str):
                parent.key = value
                if value in parent.first_seen:
                    first = parent.first_seen[value]
                    self.problem((*parent.path, value), f"duplicate key (first at line {first})", mark)
                    parent.key = _BAD_KEY
                else:
                    parent.first_seen[value] = mark.line + 1
            else:
                hint = " (quote it)" if isinstance(value, (bool, int, float)) or value is None else ""
                self.problem(parent.path, f"keys must be strings, got {describe(value)}{hint}", mark)
                parent.key = _BAD_KEY
            parent.key_mark = mark
            return
        key, parent.key = parent.key, _NO_KEY
        if key is _MERGE_KEY:
            sources = value if isinstance(value, list) else [value]
            if all(isinstance(s, dict) for s in sources):
                parent.merges.extend(s for s in sources if isinstance(s, dict))
            else:
                self.problem(parent.path, "<< must merge a mapping or a list of mappings", parent.key_mark)
        elif isinstance(key, str) and isinstance(parent.value, dict):
            parent.value[key] = value

    def close(self, done: _Open) -> object:
        if not done.merges or not isinstance(done.value, dict):
            return done.value
        merged: dict[str, object] = {}
        for source in done.merges:
            for k, v in source.items():
                merged.setdefault(k, v)  # earlier merges win, as YAML specifies
        merged.update(done.value)
        return merged
