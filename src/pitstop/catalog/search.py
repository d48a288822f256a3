"""Search over registry objects and features, ranked: exact > prefix > token > fuzzy.

A query is matched against names (object names, feature names and ``view:feature``),
feature names of views, descriptions, tags, owners and dtypes, in four tiers, asked of the
registry database's full-text index (:mod:`pitstop.registry.search_index`) in one statement
(a second one for typos the first time after a change, before the index's words are read):

1. **exact** — the whole query is a name (case ignored): ``user_features``;
2. **prefix** — a name starts with the query: ``user_f``, shortest names first;
3. **token** — every word of the query is a word of the object (the last may be the start of
   one), ranked by the database (name words weigh most, then features, tags and owner, then
   description and dtype): ``purchase amount``;
4. **fuzzy** — when a word of the query is no word of the registry: the same, with each word
   allowed one typo (two in words of eight letters or more): ``purchse``.

Each object or feature appears once, in its best tier; filters (kinds, owner, tags) apply to
every tier. ``kinds`` are classes; :class:`~pitstop.Field` asks for features::

    catalog.search("purchase", kinds=[Field], tags={"team": "growth"})
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pitstop.definitions.base import Definition
from pitstop.definitions.field import Field
from pitstop.definitions.serde import kind_for
from pitstop.errors import RetrievalError
from pitstop.registry.search_index import FEATURE, Filters, Row, words
from pitstop.registry.store import RegistryStore

__all__ = ["MATCHES", "SearchHit", "Searcher"]

MATCHES = ("exact", "prefix", "token", "fuzzy")
MAX_LIMIT = 1000
MAX_QUERY = 200


@dataclass(frozen=True)
class SearchHit:
    """One result: an object, or one feature of a view (``feature`` set)."""

    kind: str  # the registry kind of the object, of the view for a feature
    name: str
    feature: str | None
    match: str  # one of MATCHES
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    dtype: str = ""

    @property
    def ref(self) -> str:
        """``view:feature`` for a feature, else the name."""
        return f"{self.name}:{self.feature}" if self.feature else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": FEATURE if self.feature else self.kind,
            "name": self.name,
            "feature": self.feature,
            "ref": self.ref,
            "view_kind": self.kind if self.feature else None,
            "match": self.match,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
            "dtype": self.dtype,
        }


def _hit(row: Row, match: str) -> SearchHit:
    return SearchHit(row.kind, row.name, row.feature or None, match, row.description,
                     row.owner, row.tags, row.dtype)  # fmt: skip


def search_kind(cls: type[Definition]) -> str:
    """The index's name of a kind to search: a registry kind, or features for ``Field``."""
    return FEATURE if issubclass(cls, Field) else kind_for(cls)


class Searcher:
    """Searches one registry store; keeps the words of the index (for typos) per serial."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._ready = False
        self._fuzzy: tuple[int, _Typos] | None = None

    def search(
        self,
        query: str,
        *,
        kinds: Iterable[type[Definition]] = (),
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        limit: int = 20,
        serial: int | None = None,
    ) -> list[SearchHit]:
        """The best ``limit`` hits for ``query``, best first (see the module docstring).
        ``serial``: the registry's change counter as the caller last read it (the words
        known for typos are re-read when it moves); None asks the registry."""
        text = _check(query, limit)
        for value in [owner or "", *(tags or {}).keys(), *(tags or {}).values()]:
            if not isinstance(value, str) or any(ord(c) < 32 for c in value):
                raise RetrievalError(f"search filter {value!r}: tags and owner are plain text")
        if not self._ready:
            self.store.ensure_index()
            self._ready = True
        index = self.store.index
        filters = Filters(tuple(sorted({search_kind(k) for k in kinds})), owner, dict(tags or {}))
        hits: list[SearchHit] = []
        seen: set[tuple[str, str, str]] = set()

        def take(rows: list[Row], match: str) -> bool:
            for row in rows:
                key = (row.kind, row.name, row.feature)
                if key not in seen and len(hits) < limit:
                    seen.add(key)
                    hits.append(_hit(row, match))
            return len(hits) >= limit

        tokens = words(text)
        # the words of the index are known once read for this serial: a typo is then asked
        # for in the same statement as the other tiers
        typos = self._known_typos(serial)
        fuzzy = None
        if typos is not None and tokens and typos.misspelled(tokens):
            fuzzy = typos.alternatives(tokens)
        for match, row in index.tiers(text, tokens, filters, limit, fuzzy):  # one statement
            if take([row], match):
                return hits
        if typos is not None or not tokens:
            return hits
        typos = self._typos(serial)
        if typos.misspelled(tokens):
            alternatives = typos.alternatives(tokens)
            if alternatives is not None:
                take(index.match(alternatives, False, filters, limit), "fuzzy")
        return hits

    def _known_typos(self, serial: int | None) -> _Typos | None:
        fuzzy = self._fuzzy
        return fuzzy[1] if fuzzy is not None and serial is not None and fuzzy[0] == serial else None

    def _typos(self, serial: int | None) -> _Typos:
        if serial is None:
            serial = self.store.serial()
        with self._lock:
            if self._fuzzy is None or self._fuzzy[0] != serial:
                self._fuzzy = (serial, _Typos(self.store.index.vocabulary()))
            return self._fuzzy[1]


def _check(query: object, limit: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise RetrievalError("the search query is empty; give a word, e.g. `pitstop search user`")
    if len(query) > MAX_QUERY:
        raise RetrievalError(f"the search query is {len(query)} characters; at most {MAX_QUERY}")
    if any(ord(c) < 32 for c in query):
        raise RetrievalError("the search query holds control characters; send plain text")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise RetrievalError(f"the search limit must be an integer from 1 to {MAX_LIMIT}")
    return query.strip().lower()


def allowed_typos(word: str) -> int:
    """Edits a word of the query may differ by: none up to 3 letters, 1 up to 7, else 2."""
    return 0 if len(word) <= 3 else 1 if len(word) <= 7 else 2


class _Typos:
    """The index's words, found again from a misspelling.

    Every word is filed under itself and each string one deletion away; a query word's own
    deletions then meet every word one insertion, deletion, substitution or transposition
    away (and many two away), which an exact edit distance confirms.
    """

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.words = set(vocabulary)
        self._sorted = sorted(self.words)
        self._by_key: dict[str, set[str]] = {}
        for word in self.words:
            for key in _deletions(word):
                self._by_key.setdefault(key, set()).add(word)

    def near(self, word: str) -> list[str]:
        """Known words within :func:`allowed_typos` of ``word`` (itself if known)."""
        most = allowed_typos(word)
        found = {word} if word in self.words else set()
        if most:
            for key in _deletions(word):
                for candidate in self._by_key.get(key, ()):
                    if candidate not in found and _distance(word, candidate) <= most:
                        found.add(candidate)
        return sorted(found)

    def misspelled(self, tokens: Sequence[str]) -> bool:
        """Whether a word of the query is no word of the index (the last: nor the start of
        one); only then are typos looked for."""
        *whole, last = tokens
        if any(t not in self.words for t in whole):
            return True
        at = bisect.bisect_left(self._sorted, last)
        return at == len(self._sorted) or not self._sorted[at].startswith(last)

    def alternatives(self, tokens: Sequence[str]) -> list[list[str]] | None:
        """For each word, the known words it may mean; None when one has none."""
        out = [self.near(t) for t in tokens]
        return out if all(out) else None


def _deletions(word: str) -> set[str]:
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


def _distance(a: str, b: str) -> int:
    """Edit distance counting a transposition of neighbours as one edit."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            value = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, prev2[j - 2] + 1)
            row.append(value)
        prev2, prev = prev, row
    return prev[-1]
