"""Read keepalived.conf syntax into a tree of blocks (no meaning attached here).

keepalived's grammar: whitespace-separated words, `{ ... }` blocks, comments from `#`
or `!` to the end of the line, double-quoted words, and `include GLOB` (relative to the
including file). Every node keeps its file and line so that anything the importer
cannot carry over is reported where the operator wrote it.
"""

from __future__ import annotations

import glob
import shlex
from dataclasses import dataclass, field
from pathlib import Path

MAX_INCLUDE_DEPTH = 8
MAX_BYTES = 4 * 1024 * 1024


class KaSyntaxError(ValueError):
    """The file is not keepalived.conf syntax; the message names file and line."""


@dataclass(slots=True)
class KaNode:
    """One statement: `keyword args...` with an optional `{ children }` block."""

    keyword: str
    args: list[str]
    line: int
    file: str
    children: list[KaNode] = field(default_factory=list)
    block: bool = False

    def where(self) -> str:
        """'file:line' of this statement."""
        return f"{self.file}:{self.line}"

    def find(self, keyword: str) -> KaNode | None:
        """The first child called `keyword`."""
        return next((c for c in self.children if c.keyword == keyword), None)

    def value(self, keyword: str) -> str | None:
        """The first argument of the first child called `keyword`."""
        node = self.find(keyword)
        return node.args[0] if node is not None and node.args else None


def _words(line: str) -> list[str]:
    """Split one line into words; `{`/`}` are words; comments end the line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="{}")
    lexer.commenters = "#!"
    lexer.whitespace_split = True
    lexer.wordchars += "/.:-_,=@%+*[]()<>$&|;'\\~^?"
    words: list[str] = []
    for word in lexer:
        words.extend(w for w in _split_braces(word) if w)
    return words


def _split_braces(word: str) -> list[str]:
    out, current = [], ""
    for ch in word:
        if ch in "{}":
            out += [current, ch]
            current = ""
        else:
            current += ch
    return [*out, current]


def parse_file(path: Path, depth: int = 0) -> list[KaNode]:
    """The statements of `path` (includes expanded in place)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise KaSyntaxError(f"{path}: includes nested deeper than {MAX_INCLUDE_DEPTH}")
    if not path.is_file():
        raise KaSyntaxError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_BYTES:
        raise KaSyntaxError(f"{path}: larger than {MAX_BYTES} bytes")
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_text(text, str(path), base=path.parent, depth=depth)


def parse_text(text: str, name: str = "<keepalived.conf>", *, base: Path | None = None,
               depth: int = 0) -> list[KaNode]:
    """The statements of keepalived.conf `text`."""
    root = KaNode("<root>", [], 0, name, block=True)
    stack = [root]
    current: KaNode | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            words = _words(raw)
        except ValueError as exc:
            raise KaSyntaxError(f"{name}:{number}: {exc}") from None
        for word in words:
            current = _take(word, current, stack, name, number)
        if current is not None and current.keyword == "include" and current.line == number:
            stack[-1].children.pop()
            stack[-1].children.extend(_include(current, base, depth))
            current = None
    if len(stack) != 1:
        raise KaSyntaxError(f"{name}: block opened at line {stack[-1].line} is never closed")
    return root.children


def _take(word: str, current: KaNode | None, stack: list[KaNode], name: str,
          number: int) -> KaNode | None:
    """Add one word to the tree; the statement that further words on the line extend."""
    if word == "{":  # opens the block of the last statement (on this or an earlier line)
        if current is None or current.block:
            raise KaSyntaxError(f"{name}:{number}: '{{' without a keyword")
        current.block = True
        stack.append(current)
        return None
    if word == "}":
        if len(stack) == 1:
            raise KaSyntaxError(f"{name}:{number}: '}}' without a matching '{{'")
        stack.pop()
        return None
    if current is not None and not current.block and current.line == number:
        current.args.append(word)  # a statement's arguments end with its line
        return current
    node = KaNode(word, [], number, name)
    stack[-1].children.append(node)
    return node


def _include(node: KaNode, base: Path | None, depth: int) -> list[KaNode]:
    if not node.args:
        raise KaSyntaxError(f"{node.where()}: include needs a file name")
    pattern = node.args[0]
    if base is not None and not Path(pattern).is_absolute():
        pattern = str(base / pattern)
    out: list[KaNode] = []
    for found in sorted(glob.glob(pattern)):
        out.extend(parse_file(Path(found), depth + 1))
    return out
