"""Feature views, and projections of them (feature subsets, aliases, join key maps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from pitstop.definitions.base import (
    Definition,
    check_name,
    check_tags,
    check_text,
    check_ttl,
    duration,
    seconds,
    unique,
)
from pitstop.definitions.entity import Entity
from pitstop.definitions.field import Field, as_fields
from pitstop.definitions.refs import check_version, pinned_name
from pitstop.definitions.sources import (
    DataSource,
    FileSource,
    PushSource,
    RequestSource,
    not_ingested,
    source_from_spec,
)
from pitstop.errors import DefinitionError, suggest

if TYPE_CHECKING:
    from pitstop.quality.expectations import Expectation


@dataclass(frozen=True)
class Projection:
    """How a request uses a view: which features, under which name, with which keys."""

    name: str
    alias: str | None = None
    features: tuple[str, ...] | None = None  # None: all features
    join_key_map: Mapping[str, str] = field(default_factory=dict)
    version: int | None = None  # a pinned version of the view; None: the served one

    @property
    def name_to_use(self) -> str:
        """The alias, else the view's name (``view@v2`` when pinned): the output prefix."""
        return self.alias or pinned_name(self.name, self.version)

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "alias": self.alias,
            "features": None if self.features is None else list(self.features),
            "join_key_map": dict(self.join_key_map),
        }
        if self.version is not None:  # kept out when unset: older specs keep their hash
            spec["version"] = self.version
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Projection:
        feats = spec.get("features")
        return cls(
            name=spec["name"],
            alias=spec.get("alias"),
            features=None if feats is None else tuple(feats),
            join_key_map=dict(spec.get("join_key_map") or {}),
            version=spec.get("version"),
        )


#: Spec keys written only when set, so that specs written before them keep their hash.
_OPTIONAL = ("enable_validation", "version", "expectation_policy")


class Projectable(Definition):
    """Views that can be narrowed (``view[["a"]]``), renamed and re-keyed."""

    projection: Projection

    @property
    def features(self) -> tuple[Field, ...]:
        raise NotImplementedError  # FeatureView and OnDemandFeatureView define it

    @property
    def projected_features(self) -> tuple[Field, ...]:
        """The features this (possibly projected) view contributes to a request."""
        wanted = self.projection.features
        if wanted is None:
            return self.features
        by_name = {f.name: f for f in self.features}
        return tuple(by_name[n] for n in wanted)

    def __getitem__(self, names: Sequence[str]) -> Self:
        if isinstance(names, str):
            names = [names]
        known = [f.name for f in self.features]
        for n in names:  # a pinned version's features are checked against it at apply
            if n not in known and self.projection.version is None:
                raise DefinitionError(
                    f"{type(self).__name__} {self.name!r} has no feature {n!r}.{suggest(n, known)}"
                )
        return self._project(features=tuple(names))

    def with_name(self, name: str) -> Self:
        """The same view under another name (the prefix of ``full_feature_names``)."""
        check_name(name, f"{type(self).__name__} {self.name!r}.with_name")
        return self._project(alias=name)

    def with_join_key_map(self, join_key_map: Mapping[str, str]) -> Self:
        """Read the view's join keys from other columns: ``{"user_id": "buyer_id"}``."""
        keys = set(getattr(self, "join_keys", ()))
        for key in join_key_map:
            if key not in keys:
                raise DefinitionError(
                    f"{type(self).__name__} {self.name!r}.with_join_key_map: {key!r} is not a "
                    f"join key; join keys: {sorted(keys)}"
                )
        return self._project(join_key_map=dict(join_key_map))

    def with_version(self, version: int | str) -> Self:
        """The view pinned to its version ``version`` (``2`` or ``"v2"``), served or staged:
        ``FeatureService(features=[driver_stats.with_version(2)])`` reads the definition the
        registry holds as v2 (schema, source, TTL), whatever the repo's says. Select features
        after pinning (``view.with_version(2)[["conv_rate"]]``): ``apply`` checks them
        against v2. With full feature names the columns are ``driver_stats@v2__conv_rate``."""
        what = f"{type(self).__name__} {self.name!r}.with_version"
        return self._project(version=check_version(version, what))

    def _project(self, **changes: Any) -> Self:
        import dataclasses

        return self._copy(projection=dataclasses.replace(self.projection, **changes))


def _expectations(specs: list[dict[str, Any]] | None) -> list[Expectation]:
    if not specs:
        return []
    from pitstop.quality.expectations import from_spec

    return [from_spec(s) for s in specs]


def _as_list(entities: object) -> list[object]:
    if entities is None:
        return []
    return [entities] if isinstance(entities, str | Entity) else list(entities)  # type: ignore[call-overload]


def entity_names(entities: object, what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names and join keys of ``entities`` (objects or names; a name's join key is itself)."""
    if entities is None:
        return (), ()
    if isinstance(entities, str | Entity):
        entities = [entities]
    names: list[str] = []
    keys: list[str] = []
    for e in entities:  # type: ignore[attr-defined]
        if isinstance(e, Entity):
            names.append(e.name)
            keys.extend(e.join_keys)
        elif isinstance(e, str) and e:
            names.append(e)
            keys.append(e)
        else:
            raise DefinitionError(f"{what}: entities must be Entity objects or names, got {e!r}")
    unique(names, what, "entity")
    return tuple(names), tuple(keys)


class FeatureView(Projectable):
    """Features of an entity, read from a batch (or push) source.

    >>> from datetime import timedelta
    >>> from pitstop.types import Int64
    >>> src = FileSource(path="data/u.parquet", timestamp_field="event_timestamp")
    >>> fv = FeatureView(name="u", entities=["user_id"], ttl=timedelta(days=1),
    ...                  schema=[Field(name="n", dtype=Int64)], source=src)
    >>> [f.name for f in fv.features], fv.join_keys
    (['n'], ('user_id',))

    ``expectations`` are rules its rows must hold (:mod:`pitstop.quality`), checked when rows
    are pushed, written online or materialized; ``expectation_policy`` says what a batch that
    breaks one does: ``"warn"`` logs and writes it, ``"reject"`` writes nothing and raises
    :class:`~pitstop.errors.DataQualityError` (default: ``expectations.policy`` of
    feature_store.yaml, itself ``"warn"`` by default).
    """

    kind = "feature_view"
    entities: tuple[str, ...]
    join_keys: tuple[str, ...]
    schema: tuple[Field, ...]
    ttl: timedelta | None
    source: DataSource
    online: bool
    offline: bool
    description: str
    tags: dict[str, str]
    owner: str
    enable_validation: bool
    version: str | None
    entity_columns: tuple[Field, ...]
    expectations: tuple[Expectation, ...]
    expectation_policy: str | None
    _features: tuple[Field, ...]

    def __init__(
        self,
        *,
        name: str,
        source: DataSource,
        entities: Sequence[Entity | str] | None = None,
        ttl: timedelta | None = timedelta(0),
        schema: Sequence[Field] | None = None,
        online: bool = True,
        offline: bool = False,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        features: Sequence[Field] | None = None,
        enable_validation: bool = False,
        version: str | int | None = None,
        expectations: Sequence[Expectation] | None = None,
        expectation_policy: str | None = None,
    ) -> None:
        cls = type(self).__name__
        check_name(name, cls)
        what = f"{cls} {name!r}"
        if schema is not None and features is not None:
            raise DefinitionError(f"{what}: give schema or the legacy features, not both")
        names, keys = entity_names(entities, what)
        fields = as_fields(schema if schema is not None else features, what)
        unique([f.name for f in fields], what)
        self._check_source(source, what)
        self._set(
            name=name,
            entities=names,
            schema=fields,
            ttl=check_ttl(ttl, what),
            source=source,
            online=bool(online),
            offline=bool(offline),
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
            owner=check_text(owner, "owner", what),
            enable_validation=bool(enable_validation),
            version=None if version is None else str(version),
            projection=Projection(name=name),
            expectations=(),
            expectation_policy=None,
        )
        self._with_keys(keys)
        if expectations or expectation_policy is not None:  # pitstop.quality only when used
            from pitstop.quality.expectations import check_expectations, check_policy

            # an entity named by a string has join keys known only at apply (resolve_entities)
            keys_known = all(isinstance(e, Entity) for e in _as_list(entities))
            self._set(
                expectation_policy=check_policy(expectation_policy, what),
                expectations=check_expectations(expectations, self._columns(entities), what,
                                                self.timestamp_field, complete=keys_known),
            )  # fmt: skip

    def _columns(self, entities: Sequence[Entity | str] | None) -> dict[str, str | None]:
        """The columns expectations may name, by family (``None``: type unknown)."""
        from pitstop.quality.expectations import dtype_family

        found: dict[str, str | None] = {k: None for k in self.join_keys}
        for e in _as_list(entities):
            if isinstance(e, Entity) and e.dtype is not None:
                found.update({k: dtype_family(e.dtype) for k in e.join_keys})
        found.update({f.name: dtype_family(f.dtype) for f in self.schema})
        for ts in (self.timestamp_field, self.batch_source.created_timestamp_column):
            if ts:
                found[ts] = "timestamp"
        return found

    def _check_source(self, source: object, what: str) -> None:
        if isinstance(source, RequestSource):
            raise DefinitionError(
                f"{what}: a RequestSource holds request data and cannot back a feature view; "
                "use it in an @on_demand_feature_view"
            )
        if not isinstance(source, FileSource | PushSource):
            raise DefinitionError(
                f"{what}: source must be a FileSource or PushSource, got {source!r}"
                f"{not_ingested(source)}"
            )

    def _with_keys(self, keys: tuple[str, ...]) -> None:
        unique(list(keys), f"{type(self).__name__} {self.name!r}", "join key")
        key_set = set(keys)
        self._set(
            join_keys=keys,
            _features=tuple(f for f in self.schema if f.name not in key_set),
            entity_columns=tuple(f for f in self.schema if f.name in key_set),
        )

    @property
    def features(self) -> tuple[Field, ...]:
        return self._features

    @property
    def batch_source(self) -> FileSource:
        """The files historical retrieval and materialization read."""
        src = self.source
        return src.batch_source if isinstance(src, PushSource) else src  # type: ignore[return-value]

    @property
    def timestamp_field(self) -> str:
        return self.batch_source.timestamp_field

    def resolve_entities(self, entities: Mapping[str, Entity]) -> Self:
        """Take the join keys from the registered entities this view names."""
        keys: list[str] = []
        for name in self.entities:
            entity = entities.get(name)
            if entity is None:
                raise DefinitionError(
                    f"{type(self).__name__} {self.name!r} uses entity {name!r}, which is not "
                    f"defined.{suggest(name, entities)} Define it with Entity(name={name!r})."
                )
            keys.extend(entity.join_keys)
        clone = self if tuple(keys) == self.join_keys else self._copy()
        if clone is not self:
            clone._with_keys(tuple(keys))
        if self.expectations:  # now that every join key is known
            from pitstop.quality.expectations import check_expectations

            cols = clone._columns([entities[n] for n in self.entities])
            check_expectations(self.expectations, cols, f"{type(self).__name__} {self.name!r}",
                               self.timestamp_field)  # fmt: skip
        return clone

    def to_spec(self) -> dict[str, Any]:
        spec = self._spec()
        if self.enable_validation:  # kept out when unset: older specs keep their hash
            spec["enable_validation"] = True
        if self.version is not None:
            spec["version"] = self.version
        if self.expectations:  # kept out when unset, like the two above
            spec["expectations"] = [e.to_spec() for e in self.expectations]
        if self.expectation_policy is not None:
            spec["expectation_policy"] = self.expectation_policy
        return spec

    def _spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entities": list(self.entities),
            "join_keys": list(self.join_keys),
            "schema": [f.to_spec() for f in self.schema],
            "ttl_seconds": seconds(self.ttl),
            "source": self.source.to_spec(),
            "online": self.online,
            "offline": self.offline,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    @classmethod
    def _kwargs_from_spec(cls, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": spec["name"],
            "entities": spec.get("entities", []),
            "schema": [Field.from_spec(f) for f in spec.get("schema", [])],
            "ttl": duration(spec.get("ttl_seconds")),
            "source": source_from_spec(spec["source"]),
            "online": spec.get("online", True),
            "offline": spec.get("offline", False),
            "description": spec.get("description", ""),
            "tags": spec.get("tags"),
            "owner": spec.get("owner", ""),
            **{k: spec[k] for k in _OPTIONAL if k in spec},
            "expectations": _expectations(spec.get("expectations")),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Self:
        kwargs = cls._kwargs_from_spec(spec)
        expectations = kwargs.pop("expectations")  # checked when defined; keys come below
        view = cls(**kwargs)
        view._with_keys(tuple(spec.get("join_keys", view.join_keys)))
        view._set(expectations=tuple(expectations))
        return view
