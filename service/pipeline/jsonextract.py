"""Find and decode the JSON object a model meant to return.

Models wrap JSON in code fences, put prose around it, leave trailing commas, use single quotes or
Python literals, prepend a BOM, or double-encode the whole thing as a string. Each repair here is
applied only outside string literals, so text inside the answer (formulas, Russian prose with
apostrophes) is never altered.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"), None)
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_BARE_WORDS = {"True": "true", "False": "false", "None": "null"}


class JSONNotFound(ValueError):
    """No JSON value could be recovered; the message says why in words a model can act on."""


def extract_json(text: str) -> Any:
    """The first JSON object (or array) in `text`, tolerating the usual model sloppiness."""
    if not isinstance(text, str) or not text.strip():
        raise JSONNotFound("the answer is empty")
    cleaned = text.translate(_INVISIBLE).strip()
    try:
        # The fast path, and the only one that sees a double-encoded answer ("{\"a\": 1}").
        return _unwrap_string(json.loads(cleaned))
    except ValueError:
        pass
    candidates = [body for _, body in _FENCE.findall(cleaned)] + [cleaned]
    last_error = "no JSON object or array found in the answer"
    for candidate in candidates:
        spans, cut_off = _balanced_spans(candidate)
        for span in spans:
            try:
                return _unwrap_string(_loads_lenient(span))
            except ValueError as exc:
                last_error = f"the JSON is malformed ({exc})"
        if cut_off:
            last_error = "the JSON is cut off before its end (unbalanced brackets; answer too long?)"
    raise JSONNotFound(last_error)


def _loads_lenient(span: str) -> Any:
    try:
        return json.loads(span)
    except ValueError:
        pass
    repaired = _normalise(span)
    try:
        return json.loads(repaired)
    except ValueError:
        # Typographic quotes as delimiters are the last resort: converting them can damage text.
        return json.loads(_normalise(span.translate(_SMART_QUOTES)))


def _unwrap_string(value: Any) -> Any:
    """A model sometimes returns the JSON encoded once more as a string literal."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        return json.loads(value)
    return value


def _balanced_spans(text: str) -> tuple[list[str], bool]:
    """Every top-level {...} or [...] span, objects first, and whether a bracket never closes.

    Scanning stops at the first bracket that never closes: whatever follows is inside it, so a
    nested fragment of a cut-off answer (e.g. its first row) must not pass for the whole answer.
    """
    spans: list[tuple[int, str]] = []
    start = 0
    cut_off = False
    while True:
        positions = [p for p in (text.find("{", start), text.find("[", start)) if p >= 0]
        if not positions:
            break
        begin = min(positions)
        end = _matching_end(text, begin)
        if end is None:
            cut_off = True
            break
        spans.append((0 if text[begin] == "{" else 1, text[begin : end + 1]))
        start = end + 1
    spans.sort(key=lambda item: item[0])  # stable: keeps document order within each kind
    return [span for _, span in spans], cut_off


def _matching_end(text: str, begin: int) -> int | None:
    depth = 0
    quote: str | None = None
    index = begin
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'" and _opens_string(text, index):
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _opens_string(text: str, index: int) -> bool:
    """A single quote starts a string only where a JSON value or key may start, not in prose."""
    if text[index] == '"':
        return True
    previous = text[:index].rstrip()[-1:]
    return previous in ("", "{", "[", ",", ":")


def _normalise(span: str) -> str:
    """Rewrite single-quoted strings, Python literals, comments and trailing commas into JSON."""
    out: list[str] = []
    index = 0
    length = len(span)
    while index < length:
        char = span[index]
        if char in "\"'" and _opens_string(span, index):
            literal, index = _read_string(span, index)
            out.append(literal)
            continue
        if span.startswith("//", index):
            newline = span.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if span.startswith("/*", index):
            close = span.find("*/", index + 2)
            index = length if close < 0 else close + 2
            continue
        if char == ",":
            rest = span[index + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                index += 1
                continue
        if char.isalpha():
            match = re.match(r"[A-Za-z_]+", span[index:])
            word = match.group(0) if match else char
            out.append(_BARE_WORDS.get(word, word))
            index += len(word)
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _read_string(span: str, begin: int) -> tuple[str, int]:
    """One string literal starting at `begin`, returned re-encoded as a JSON double-quoted string."""
    quote = span[begin]
    chars: list[str] = []
    index = begin + 1
    while index < len(span):
        char = span[index]
        if char == "\\" and index + 1 < len(span):
            nxt = span[index + 1]
            if nxt == "'":
                chars.append("'")  # \' is not a JSON escape
            else:
                chars.append(char + nxt)
            index += 2
            continue
        if char == quote:
            break
        if char == '"':
            chars.append('\\"')  # only reachable inside single-quoted strings
        elif char == "\n":
            chars.append("\\n")  # raw newlines inside strings are a common model slip
        elif char == "\t":
            chars.append("\\t")
        else:
            chars.append(char)
        index += 1
    return '"' + "".join(chars) + '"', index + 1
