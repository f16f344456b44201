"""The query language.

A query is a description, optionally with vector arithmetic (as in Kiros et al. 2014,
``image(blue car) - "blue" + "red"``):

* ``red car in the snow`` — plain words describe what to find;
* ``-word`` or ``not word`` — push a concept away (``beach -people``);
* ``+word`` — add a concept to the rest (``like:car.jpg -blue +red``);
* ``like:PATH`` — start from a photo's own vector: find similar photos;
* double quotes group words: ``-"blue sky"``, ``like:"holiday 2019/beach.jpg"``; apostrophes
  and backslashes are part of words (``men's shoes -women's``, ``like:C:\\photos\\x.jpg``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePath

from engine.errors import QueryError

#: Characters that alone are no concept: the plus and minus signs and the dashes typed or
#: pasted for them.
SIGNS = "+-\u2010\u2011\u2012\u2013\u2014\u2212"


@dataclass(frozen=True)
class Query:
    text: str  # the plain description ("" when there is none)
    plus: tuple[str, ...] = ()
    minus: tuple[str, ...] = ()
    like: tuple[str, ...] = ()
    raw: str = field(default="", compare=False)

    @property
    def is_empty(self) -> bool:
        return not (self.text or self.plus or self.like)

    @property
    def is_plain(self) -> bool:
        """Only a description: no arithmetic, no photos."""
        return not (self.plus or self.minus or self.like)

    @property
    def is_similar(self) -> bool:
        """Only photos (``like:``, Find similar): no words, no arithmetic."""
        return bool(self.like) and not (self.text or self.plus or self.minus)


def _tokens(raw: str) -> list[str]:
    """Words split at whitespace, with double quotes grouping (and removed); an apostrophe is a
    letter, as in "men's", and a backslash too, as in a Windows path."""
    lexer = shlex.shlex(raw, posix=True)
    lexer.whitespace_split = True
    lexer.quotes = '"'
    lexer.escape = ""
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        return raw.replace('"', " ").split()  # an unbalanced quote: treat quotes as spaces


def parse(raw: str) -> Query:
    """Parse a query string; raises :class:`QueryError` for an unusable query."""
    tokens = _tokens(raw)
    words: list[str] = []
    plus: list[str] = []
    minus: list[str] = []
    like: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        lower = token.lower()
        if lower.startswith("like:"):
            target = token[5:]
            if not target and i + 1 < len(tokens):
                i += 1
                target = tokens[i]
            if not target:
                raise QueryError("like: needs a photo, for example like:beach.jpg")
            like.append(target)
        elif not token.strip(SIGNS):
            pass  # signs with nothing after them ("beach - people" typed with a space): no concept
        elif lower == "not":
            if i + 1 < len(tokens) and tokens[i + 1].strip(SIGNS):
                i += 1
                minus.append(tokens[i])
            # else: "not" with nothing after it to push away, "dog not": no concept either
        elif token.startswith("-") and len(token) > 1:
            minus.append(token[1:])
        elif token.startswith("+") and len(token) > 1:
            plus.append(token[1:])
        else:
            words.append(token)
        i += 1
    query = Query(" ".join(words).strip(), tuple(plus), tuple(minus), tuple(like), raw)
    if query.is_empty:
        if minus:
            raise QueryError("a query needs something to look for, not only things to avoid")
        raise QueryError("empty query")
    return query


#: Where a ``like:`` token can begin in the typed text: at its start, after a space or a quote.
_LIKE_AT = re.compile(r'(?:^|(?<=[\s"]))like:', re.IGNORECASE)


def abbreviate(raw: str) -> str:
    """``raw`` as a person reads it back: each ``like:`` photo by its file name, not its whole
    path (``like:"/home/ann/Pictures/2019/beach.jpg" -blue`` reads ``like:beach.jpg -blue``).
    The photos are those :func:`parse` reads; a query it refuses comes back as typed."""
    try:
        targets = parse(raw).like
    except QueryError:
        return raw
    parts: list[str] = []
    at = 0
    for target in targets:
        marker = _LIKE_AT.search(raw, at)
        start = raw.find(target, marker.end()) if marker else -1
        if start < 0:  # (an unbalanced quote, read as a space, can hide it)
            continue
        end = start + len(target)
        if raw[start - 1] == '"' and raw[end : end + 1] == '"':
            start, end = start - 1, end + 1
        name = PurePath(target).name or target
        parts += [raw[at:start], f'"{name}"' if " " in name else name]
        at = end
    parts.append(raw[at:])
    return "".join(parts)
