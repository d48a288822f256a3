"""The registry's full-text index of live objects and features, kept in its own database.

One row of ``pitstop_search`` describes one live object or one feature of a view: its name,
the names around it (a view's features, a feature's view), tags, owner, description and
dtypes. The database indexes the words of those columns with its own full-text engine:

- SQLite: an FTS5 table over ``pitstop_search`` (external content), kept in step by
  triggers; ranked with ``bm25`` and column weights;
- PostgreSQL: a generated ``tsvector`` column (weights A to D) with a GIN index, ranked with
  ``ts_rank``.

A search asks for its exact, prefix, word and (once the index's words are known) typo matches
in one statement (:meth:`SearchIndex.tiers`): on PostgreSQL every statement is a round trip.

Rows are written in the transaction that writes the versions they describe
(:func:`write`), so a reader never sees an index that disagrees with the registry. Words are
split here, the same way for both databases (letters and digits; everything else separates),
and given to the database already split, so both find the same words. Example::

    index = store.index          # a SearchIndex of the store's project
    index.exact("user_features", Filters())
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pitstop.definitions.base import Definition
from pitstop.definitions.datasets import Model, SavedDataset
from pitstop.definitions.feature_view import Projectable
from pitstop.definitions.serde import from_spec
from pitstop.errors import PitstopError
from pitstop.registry.sqldialect import Database, Dialect

#: What a search for features (not objects) names as its kind; a feature's row keeps the kind
#: of its view and a non-empty ``feature``.
FEATURE = "feature"
#: Bumped when the rows an object yields change; an index of another version is rebuilt.
INDEX_VERSION = "2"
META_KEY = "search_index_version"
#: A write of at least this many rows refreshes the database's statistics of the index.
ANALYZE_ROWS = 1000

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: ``"user_features:Float32"`` -> user, features,
    float32."""
    return _WORD.findall(text.lower())


def _text(*parts: str) -> str:
    """The words of ``parts``, each once: a word repeated in one column (a service listing
    twenty views named ``*_purchases``) counts as once for ranking."""
    return " ".join(dict.fromkeys(w for part in parts for w in words(part)))


@dataclass(frozen=True)
class Doc:
    """One indexed row: an object (``feature == ""``) or one feature of a view."""

    kind: str
    name: str
    feature: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    dtype: str = ""
    context: str = ""  # a view's feature names, a feature's view, a service's views

    @property
    def title(self) -> str:
        return (self.feature or self.name).lower()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.feature}".lower() if self.feature else self.name.lower()

    def row(self, project: str) -> tuple[object, ...]:
        tags = "".join(f"\n{k}={v}" for k, v in sorted(self.tags.items())) + "\n"
        tag_words = _text(*(f"{k} {v}" for k, v in self.tags.items()))
        row = (
            project, self.kind, self.name, self.feature, self.title, self.ref,
            self.owner.lower(), self.owner, json.dumps(dict(self.tags), sort_keys=True), tags,
            self.description, self.dtype, _text(self.feature or self.name), _text(self.context),
            tag_words, _text(self.owner), _text(self.description), _text(self.dtype),
        )  # fmt: skip
        return tuple(v.replace("\x00", "") for v in row)  # PostgreSQL text holds no NUL


def docs(kind: str, name: str, spec: Mapping[str, Any]) -> list[Doc]:
    """The rows describing one live object: itself, and each feature of a view.

    A spec this version cannot decode (a kind it does not know) is indexed by its name,
    description, owner and tags."""
    try:
        obj = from_spec(kind, spec)
    except (PitstopError, LookupError, TypeError, ValueError):
        return [_raw_doc(kind, name, spec)]
    owner: str = getattr(obj, "owner", "")
    tags: Mapping[str, str] = getattr(obj, "tags", {})
    description: str = getattr(obj, "description", "")
    if not isinstance(obj, Projectable):
        return [Doc(kind, name, "", owner, tags, description, context=_context(obj))]
    features = obj.features
    names = " ".join(f.name for f in features)
    out = [Doc(kind, name, "", owner, tags, description, context=names)]
    out += [
        Doc(kind, name, f.name, owner, {**tags, **f.tags}, f.description, str(f.dtype), name)
        for f in features
    ]  # fmt: skip
    return out


def _raw_doc(kind: str, name: str, spec: Mapping[str, Any]) -> Doc:
    def text(key: str) -> str:
        value = spec.get(key)
        return value if isinstance(value, str) else ""

    tags = spec.get("tags")
    if not isinstance(tags, Mapping):
        tags = {}
    tags = {str(k): str(v) for k, v in tags.items()}
    return Doc(kind, name, "", text("owner"), tags, text("description"))


def _context(obj: Definition) -> str:
    """Names an object refers to: a service's views, an entity's join keys, a saved dataset's
    features and service, a model's service and datasets."""
    parts = [p.name_to_use for p in getattr(obj, "projections", ())]
    parts += list(getattr(obj, "join_keys", ()))
    if isinstance(obj, SavedDataset | Model):
        parts += [*getattr(obj, "features", ()), *getattr(obj, "training_datasets", ())]
        parts += [obj.feature_service or ""]
    return " ".join(parts)


# --- storage ---------------------------------------------------------------------------------

_COLUMNS = (
    "project, kind, name, feature, title, ref, owner_key, owner, tags, tag_pairs, description, "
    "dtype, title_words, context_words, tag_words, owner_words, description_words, dtype_words"
)
_FTS_COLUMNS = "title_words, context_words, tag_words, owner_words, description_words, dtype_words"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS pitstop_search ("
    " project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, feature TEXT NOT NULL,"
    " title {key} NOT NULL, ref {key} NOT NULL, owner_key TEXT NOT NULL, owner TEXT NOT NULL,"
    " tags TEXT NOT NULL, tag_pairs TEXT NOT NULL, description TEXT NOT NULL,"
    " dtype TEXT NOT NULL, title_words TEXT NOT NULL, context_words TEXT NOT NULL,"
    " tag_words TEXT NOT NULL, owner_words TEXT NOT NULL, description_words TEXT NOT NULL,"
    " dtype_words TEXT NOT NULL{extra},"
    " PRIMARY KEY (project, kind, name, feature))"
)
_INDEXES = [
    "CREATE INDEX IF NOT EXISTS pitstop_search_title ON pitstop_search (project, title)",
    "CREATE INDEX IF NOT EXISTS pitstop_search_ref ON pitstop_search (project, ref)",
]
_SELECT = "s.kind, s.name, s.feature, s.owner, s.tags, s.description, s.dtype"


Words = Sequence[Sequence[str]]  # for each word of a query, the words it may mean


def _fts5_syntax(words: Words, last_is_prefix: bool) -> str:
    groups = []
    for i, options in enumerate(words):
        star = "*" if last_is_prefix and i == len(words) - 1 else ""
        # words are letters and digits only: nothing to escape
        groups.append("(" + " OR ".join(f'"{w}"{star}' for w in options) + ")")
    return " AND ".join(groups)


def _tsquery_syntax(words: Words, last_is_prefix: bool) -> str:
    groups = []
    for i, options in enumerate(words):
        star = ":*" if last_is_prefix and i == len(words) - 1 else ""
        groups.append("(" + " | ".join(f"{w}{star}" for w in options) + ")")
    return " & ".join(groups)


@dataclass(frozen=True)
class _FullText:
    """How one database indexes and matches words."""

    ddl: tuple[str, ...]
    source: str  # FROM clause joining the word index
    match: str  # condition binding one query string
    rank: str  # a row's rank, best lowest; binds the query string if rank_binds
    rank_binds: bool
    contains: str  # "{a} contains {b}"
    vocabulary: str  # every indexed word; binds the project if vocabulary_binds
    vocabulary_binds: bool
    syntax: Callable[[Words, bool], str]  # words (the last maybe a prefix) -> query
    collate: str = ""  # orders names by code point, as Python and SQLite do
    analyze: str = ""  # refreshes the planner's statistics after a large write
    tune: tuple[str, ...] = ()  # brings an index an older version made up to date


_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS pitstop_search_{name} AFTER {event} ON pitstop_search BEGIN"
    " {body} END"
)
_SQLITE = _FullText(
    ddl=(
        _TABLE.format(key="TEXT", extra=""),
        *_INDEXES,
        f"CREATE VIRTUAL TABLE IF NOT EXISTS pitstop_search_fts USING fts5({_FTS_COLUMNS},"
        " content='pitstop_search', content_rowid='rowid',"
        " tokenize='unicode61 remove_diacritics 0')",
        _TRIGGER.format(name="ai", event="INSERT", body=(
            f"INSERT INTO pitstop_search_fts (rowid, {_FTS_COLUMNS}) VALUES (new.rowid,"
            " new.title_words, new.context_words, new.tag_words, new.owner_words,"
            " new.description_words, new.dtype_words);")),
        _TRIGGER.format(name="ad", event="DELETE", body=(
            f"INSERT INTO pitstop_search_fts (pitstop_search_fts, rowid, {_FTS_COLUMNS})"
            " VALUES ('delete', old.rowid, old.title_words, old.context_words, old.tag_words,"
            " old.owner_words, old.description_words, old.dtype_words);")),
        "CREATE VIRTUAL TABLE IF NOT EXISTS pitstop_search_vocab"
        " USING fts5vocab(pitstop_search_fts, 'row')",
    ),
    # CROSS JOIN keeps the word index the outer loop (the planner may otherwise scan every
    # row and ask the word index about each)
    source="pitstop_search_fts f CROSS JOIN pitstop_search s ON s.rowid = f.rowid",
    # name words weigh most, then a view's features (a feature's view), tags, owner, then
    # description and dtype
    match="pitstop_search_fts MATCH ? AND f.rank MATCH 'bm25(10.0, 4.0, 3.0, 3.0, 1.0, 1.0)'",
    rank="f.rank",  # bm25: lower is better
    rank_binds=False,
    contains="instr({a}, {b}) > 0",
    vocabulary="SELECT term FROM pitstop_search_vocab",  # one vocabulary for every project
    vocabulary_binds=False,
    syntax=_fts5_syntax,
)  # fmt: skip
_WEIGHTED = (
    "setweight(to_tsvector('simple', title_words), 'A') ||"
    " setweight(to_tsvector('simple', context_words), 'B') ||"
    " setweight(to_tsvector('simple', tag_words || ' ' || owner_words), 'C') ||"
    " setweight(to_tsvector('simple', description_words || ' ' || dtype_words), 'D')"
)
_POSTGRES = _FullText(
    ddl=(
        # names compare byte by byte, so that a prefix is a range of the index
        _TABLE.format(
            key='TEXT COLLATE "C"',
            extra=f", words tsvector GENERATED ALWAYS AS ({_WEIGHTED}) STORED",
        ),
        *_INDEXES,
        # without fastupdate: with it, new rows wait in a list that every search reads
        # through until a vacuum merges them (a registry just applied was searched ~20x
        # slower)
        "CREATE INDEX IF NOT EXISTS pitstop_search_words ON pitstop_search USING GIN (words)"
        " WITH (fastupdate = off)",
    ),
    source="pitstop_search s",
    match="s.words @@ to_tsquery('simple', ?)",
    rank="-ts_rank(s.words, to_tsquery('simple', ?))",
    rank_binds=True,
    contains="strpos({a}, {b}) > 0",
    vocabulary="SELECT word FROM ts_stat('SELECT words FROM pitstop_search WHERE project = '"
    " || quote_literal(?))",
    vocabulary_binds=True,
    syntax=_tsquery_syntax,
    collate=' COLLATE "C"',
    # a table just filled has no statistics until autovacuum (when it runs) comes by, and the
    # planner then reads every row of the project instead of asking the word index
    analyze="ANALYZE pitstop_search",
    tune=(
        "ALTER INDEX pitstop_search_words SET (fastupdate = off)",
        "SELECT gin_clean_pending_list('pitstop_search_words'::regclass)",
    ),
)


def _full_text(dialect: Dialect) -> _FullText:
    return _POSTGRES if dialect.name == "postgresql" else _SQLITE


def ddl(dialect: Dialect) -> list[str]:
    """The statements creating the index (idempotent)."""
    return list(_full_text(dialect).ddl)


def write(
    db: Database,
    project: str,
    changed: Iterable[tuple[str, str, Mapping[str, Any] | None]],
) -> None:
    """Replace the rows of each ``(kind, name, spec)`` (``spec`` None: the object is gone)."""
    rows: list[tuple[object, ...]] = []
    for kind, name, spec in changed:
        db.execute(
            "DELETE FROM pitstop_search WHERE project = ? AND kind = ? AND name = ?",
            (project, kind, name),
        )
        if spec is not None:
            rows += [d.row(project) for d in docs(kind, name, spec)]
    _insert(db, rows)


def _insert(db: Database, rows: list[tuple[object, ...]]) -> None:
    marks = ", ".join("?" * len(_COLUMNS.split(",")))
    db.executemany(f"INSERT INTO pitstop_search ({_COLUMNS}) VALUES ({marks})", rows)
    analyze = _full_text(db.dialect).analyze
    if analyze and len(rows) >= ANALYZE_ROWS:
        db.execute(analyze)


def clear(db: Database, project: str) -> None:
    """Remove every row of ``project``."""
    db.execute("DELETE FROM pitstop_search WHERE project = ?", (project,))


def rebuild(db: Database, project: str, live: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    """Index ``live`` objects from scratch and record the index version."""
    clear(db, project)
    _insert(db, [d.row(project) for kind, name, spec in live for d in docs(kind, name, spec)])
    for statement in _full_text(db.dialect).tune:
        db.execute(statement)
    mark_built(db, project)


def mark_built(db: Database, project: str) -> None:
    """Record that ``project``'s rows describe all its live objects."""
    db.execute(
        "INSERT INTO pitstop_meta (project, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT (project, key) DO UPDATE SET value = excluded.value",
        (project, META_KEY, INDEX_VERSION),
    )


# --- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What a result must be: one of ``kinds`` (all when empty; :data:`FEATURE` for features),
    with ``owner`` and all ``tags``."""

    kinds: tuple[str, ...] = ()
    owner: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One index row as a query returns it."""

    kind: str
    name: str
    feature: str
    owner: str
    tags: dict[str, str]
    description: str
    dtype: str


Query = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]

#: The tiers :meth:`SearchIndex.tiers` asks for, in the order they rank.
EXACT, PREFIX, TOKEN, FUZZY = "exact", "prefix", "token", "fuzzy"
_TIERS = (EXACT, PREFIX, TOKEN, FUZZY)


@dataclass(frozen=True)
class _Part:
    """One statement and its parameters."""

    sql: str
    params: list[object]


def _found(tiers: str) -> str:
    """How many different rows the tiers (named in :meth:`SearchIndex.tiers`) found."""
    union = " UNION ".join(f"SELECT kind, name, feature FROM {t}" for t in tiers)
    return f"(SELECT count(*) AS n FROM ({union}) AS u) AS g"


class SearchIndex:
    """Queries over the index rows of one project."""

    def __init__(self, query: Query, dialect: Dialect, project: str) -> None:
        self._query = query
        self._fts = _full_text(dialect)
        self.project = project
        c = self._fts.collate
        self._names = f"s.feature{c}, s.kind{c}, s.name{c}"  # ties broken by these

    def _where(self, filters: Filters) -> tuple[str, list[object]]:
        sql = " AND s.project = ?"
        params: list[object] = [self.project]
        kinds = [k for k in filters.kinds if k != FEATURE]
        ors = [f"(s.feature = '' AND s.kind IN ({', '.join('?' * len(kinds))}))"] if kinds else []
        params += kinds
        if FEATURE in filters.kinds:
            ors.append("s.feature <> ''")
        if ors:
            sql += f" AND ({' OR '.join(ors)})"
        if filters.owner is not None:
            sql += " AND s.owner_key = ?"
            params.append(filters.owner.lower())
        for key, value in sorted(filters.tags.items()):
            sql += " AND " + self._fts.contains.format(a="s.tag_pairs", b="?")
            params.append(f"\n{key}={value}\n")
        return sql, params

    # Each tier selects its rows with two more columns, ``k`` and ``t2``: its order is
    # ``k, feature, t2, kind, name`` (``k`` a length or a rank, ``t2`` the name for prefixes).

    def _exact(self, text: str, filters: Filters, limit: int) -> _Part:
        where, params = self._where(filters)
        column = "ref" if ":" in text else "title"  # one index, not an OR of two
        return _Part(
            f"SELECT {_SELECT}, CAST(0 AS REAL) AS k, '' AS t2 FROM pitstop_search s"
            f" WHERE s.{column} = ?{where} ORDER BY {self._names} LIMIT ?",
            [text, *params, limit],
        )

    def _prefix(self, text: str, filters: Filters, limit: int) -> _Part:
        where, params = self._where(filters)
        c = self._fts.collate
        return _Part(
            f"SELECT {_SELECT}, CAST(length(s.title) AS REAL) AS k, s.title AS t2"
            f" FROM pitstop_search s WHERE s.title >= ? AND s.title < ?{where}"
            f" ORDER BY length(s.title), s.feature{c}, s.title, s.kind{c}, s.name{c} LIMIT ?",
            [text, text + "\uffff", *params, limit],
        )

    def _match(
        self,
        words: Words,
        last_is_prefix: bool,
        filters: Filters,
        limit: int,
        after: str = "",
    ) -> _Part:
        """``after``: match only when the tiers named (see :meth:`tiers`) found fewer than
        ``limit`` different rows."""
        where, params = self._where(filters)
        text = self._fts.syntax(words, last_is_prefix)
        source, gates = self._fts.source, []
        if after:  # one row joined first: when it fails, the word index is never read
            source = f"{_found(after)} CROSS JOIN {source}"
            where = f" AND g.n < ?{where}"
            gates = [limit]
        return _Part(
            f"SELECT {_SELECT}, CAST({self._fts.rank} AS REAL) AS k, '' AS t2"
            f" FROM {source} WHERE {self._fts.match}{where}"
            f" ORDER BY k, {self._names} LIMIT ?",
            [*([text] if self._fts.rank_binds else []), text, *gates, *params, limit],
        )

    def _rows(self, part: _Part) -> list[Row]:
        return [Row(*_decode(r[:7])) for r in self._query(part.sql, part.params)]

    def exact(self, text: str, filters: Filters, limit: int) -> list[Row]:
        """Rows whose name (or ``view:feature``) is ``text``, ignoring case."""
        return self._rows(self._exact(text, filters, limit))

    def prefix(self, text: str, filters: Filters, limit: int) -> list[Row]:
        """Rows whose name starts with ``text``, shortest names first."""
        return self._rows(self._prefix(text, filters, limit))

    def match(self, words: Words, last_is_prefix: bool, filters: Filters, limit: int) -> list[Row]:
        """Rows holding, for every item of ``words``, one of its words in any column (the
        last maybe as a prefix), best ranked first."""
        return self._rows(self._match(words, last_is_prefix, filters, limit))

    def tiers(
        self,
        text: str,
        tokens: Sequence[str],
        filters: Filters,
        limit: int,
        fuzzy: Words | None = None,
    ) -> Iterator[tuple[str, Row]]:
        """The tiers of a search, in one statement, best first: up to ``limit`` :meth:`exact`
        rows, ``limit`` :meth:`prefix` rows, then, while the tiers before found fewer than
        ``limit`` different rows, ``limit`` :meth:`match` rows of ``tokens`` (the last maybe
        a prefix) and ``limit`` rows of the words ``fuzzy`` allows for each.

        A row may come in several tiers; the first ``limit`` different ones are those of
        asking the tiers one by one (the ``limit`` best rows of a tier repeat at most as many
        rows as the tiers before found, so they hold all it adds)."""
        exact, prefix = self._exact(text, filters, limit), self._prefix(text, filters, limit)
        parts = [f"e AS ({exact.sql})", f"p AS ({prefix.sql})"]
        params = [*exact.params, *prefix.params]
        if tokens:
            match = self._match([[t] for t in tokens], True, filters, limit, after="ep")
            parts.append(f"t AS ({match.sql})")
            params += match.params
        if tokens and fuzzy:
            near = self._match(fuzzy, False, filters, limit, after="ept")
            parts.append(f"z AS ({near.sql})")
            params += near.params
        names = "eptz"[: len(parts)]  # not s, f, g, u: the aliases inside
        sql = f"WITH {', '.join(parts)} " + " UNION ALL ".join(
            f"SELECT *, {i} FROM {name}" for i, name in enumerate(names)
        )
        rows = self._query(sql, params)
        # UNION ALL keeps no order: each tier's own order, restored
        rows.sort(key=lambda r: (r[9], r[7], r[2], r[8], r[0], r[1]))
        return ((_TIERS[r[9]], Row(*_decode(r[:7]))) for r in rows)

    def vocabulary(self) -> list[str]:
        """Every word the index holds (for SQLite: of every project)."""
        params = [self.project] if self._fts.vocabulary_binds else []
        return [str(word) for (word,) in self._query(self._fts.vocabulary, params)]


def _decode(row: Sequence[Any]) -> tuple[Any, ...]:
    kind, name, feature, owner, tags, description, dtype = row
    return kind, name, feature, owner, json.loads(tags), description, dtype
