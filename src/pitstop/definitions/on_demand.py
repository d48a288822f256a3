"""On-demand feature views: features computed at request time from other features.

The function is stored in the registry as source text (with the imports it uses) and rebuilt
when first called, so **write access to the registry means code execution** for every reader.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pitstop.definitions.base import check_name, check_tags, check_text, unique
from pitstop.definitions.feature_view import FeatureView, Projectable, Projection
from pitstop.definitions.field import Field, as_fields
from pitstop.definitions.sources import RequestSource
from pitstop.errors import DefinitionError

MODES = ("pandas", "python")


def _function_source(func: Callable[..., Any]) -> tuple[str, str] | None:
    """The function's own text (without decorators) and the imports of its module it uses."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    tree = ast.parse(text)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    body = "\n".join(text.splitlines()[node.lineno - 1 :]) + "\n"
    parts: list[ast.AST] = [*node.body, node.args] + ([node.returns] if node.returns else [])
    used = {n.id for part in parts for n in ast.walk(part) if isinstance(n, ast.Name)}
    imports: list[str] = []
    module = inspect.getmodule(func)
    try:
        module_tree = ast.parse(inspect.getsource(module)) if module else None
    except (OSError, TypeError):
        module_tree = None
    for stmt in module_tree.body if module_tree else []:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            bound = {(a.asname or a.name).split(".")[0] for a in stmt.names}
            if bound & used:
                imports.append(ast.unparse(stmt))
    return body, "\n".join(imports)


def _rebuild(name: str, body: str, imports: str, what: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": f"pitstop_udf_{name}"}
    try:
        exec(compile(imports + "\n" + body, f"<on-demand view {what}>", "exec"), namespace)
    except Exception as exc:
        raise DefinitionError(
            f"on-demand feature view {what}: its stored function {name!r} cannot be rebuilt "
            f"({type(exc).__name__}: {exc}); re-apply the feature repo"
        ) from exc
    return namespace[name]


class OnDemandFeatureView(Projectable):
    """Features computed by a function of other views' features and request data.

    ``mode="pandas"`` passes a DataFrame and expects one back; ``mode="python"`` passes a dict
    of lists and expects a dict of lists (no pandas on the serving path).
    """

    kind = "on_demand_feature_view"
    sources: tuple[Projection, ...]
    request_sources: tuple[RequestSource, ...]
    schema: tuple[Field, ...]
    mode: str
    udf_name: str
    udf_source: str | None
    udf_imports: str
    write_to_online_store: bool
    description: str
    tags: dict[str, str]
    owner: str

    def __init__(
        self,
        *,
        name: str,
        sources: Sequence[FeatureView | RequestSource],
        schema: Sequence[Field],
        udf: Callable[..., Any] | None = None,
        mode: str = "pandas",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        write_to_online_store: bool = False,
        entities: object = None,
        udf_string: str = "",
        feature_transformation: object = None,
        singleton: bool = False,
    ) -> None:
        check_name(name, "OnDemandFeatureView")
        what = f"OnDemandFeatureView {name!r}"
        if mode not in MODES:
            raise DefinitionError(
                f"{what}: mode {mode!r} is not supported; allowed: pandas, python"
            )
        if singleton:
            raise DefinitionError(f"{what}: singleton=True is not supported; use mode='python'")
        if udf is None or not callable(udf):
            raise DefinitionError(f"{what}: udf must be a function, got {udf!r}")
        views, requests = _split_sources(sources, what)
        fields = as_fields(schema, what)
        if not fields:
            raise DefinitionError(f"{what}: schema must list the Fields the function returns")
        unique([f.name for f in fields], what)
        captured = _function_source(udf)
        self._set(
            name=name,
            sources=views,
            request_sources=requests,
            schema=fields,
            mode=mode,
            udf_name=udf.__name__,
            udf_source=captured[0] if captured else None,
            udf_imports=captured[1] if captured else "",
            _udf=udf,
            write_to_online_store=bool(write_to_online_store),
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
            owner=check_text(owner, "owner", what),
            projection=Projection(name=name),
        )

    @property
    def features(self) -> tuple[Field, ...]:
        return self.schema

    @property
    def udf(self) -> Callable[..., Any]:
        """The transformation function (rebuilt from its stored text on first use)."""
        func = self.__dict__.get("_udf")
        if func is None:
            assert self.udf_source is not None
            func = _rebuild(self.udf_name, self.udf_source, self.udf_imports, repr(self.name))
            object.__setattr__(self, "_udf", func)
        return func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.udf(*args, **kwargs)

    def to_spec(self) -> dict[str, Any]:
        if self.udf_source is None:
            raise DefinitionError(
                f"OnDemandFeatureView {self.name!r}: the source text of function "
                f"{self.udf_name!r} is not available, so it cannot be stored; define the "
                "function in a .py file of the feature repo"
            )
        return {
            "name": self.name,
            "sources": [p.to_spec() for p in self.sources],
            "request_sources": [r.to_spec() for r in self.request_sources],
            "schema": [f.to_spec() for f in self.schema],
            "mode": self.mode,
            "udf": {"name": self.udf_name, "source": self.udf_source, "imports": self.udf_imports},
            "write_to_online_store": self.write_to_online_store,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> OnDemandFeatureView:
        view = cls.__new__(cls)
        udf = spec["udf"]
        view._set(
            name=spec["name"],
            sources=tuple(Projection.from_spec(p) for p in spec.get("sources", [])),
            request_sources=tuple(
                RequestSource.from_spec(r) for r in spec.get("request_sources", [])
            ),
            schema=tuple(Field.from_spec(f) for f in spec["schema"]),
            mode=spec.get("mode", "pandas"),
            udf_name=udf["name"],
            udf_source=udf["source"],
            udf_imports=udf.get("imports", ""),
            _udf=None,
            write_to_online_store=spec.get("write_to_online_store", False),
            description=spec.get("description", ""),
            tags=spec.get("tags") or {},
            owner=spec.get("owner", ""),
            projection=Projection(name=spec["name"]),
        )
        return view


def _split_sources(
    sources: object, what: str
) -> tuple[tuple[Projection, ...], tuple[RequestSource, ...]]:
    if isinstance(sources, Mapping):
        sources = list(sources.values())  # Feast's old dict form
    if not isinstance(sources, Sequence) or isinstance(sources, str) or not sources:
        raise DefinitionError(
            f"{what}: sources must be a non-empty list of feature views and request sources"
        )
    views: list[Projection] = []
    requests: list[RequestSource] = []
    for s in sources:
        if isinstance(s, RequestSource):
            requests.append(s)
        elif isinstance(s, FeatureView):
            views.append(s.projection)
        else:
            raise DefinitionError(
                f"{what}: source {s!r} is not a feature view or a RequestSource; on-demand views "
                "read features of FeatureView/StreamFeatureView objects and request data"
            )
    return tuple(views), tuple(requests)


def on_demand_feature_view(
    *,
    sources: Sequence[FeatureView | RequestSource],
    schema: Sequence[Field],
    mode: str = "pandas",
    name: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    owner: str = "",
    write_to_online_store: bool = False,
    entities: object = None,
    singleton: bool = False,
) -> Callable[[Callable[..., Any]], OnDemandFeatureView]:
    """Decorator that turns a function into an :class:`OnDemandFeatureView`.

    >>> from pitstop.types import Float64
    >>> from pitstop import RequestSource, Field
    >>> req = RequestSource(name="req", schema=[Field(name="x", dtype=Float64)])
    >>> @on_demand_feature_view(sources=[req], schema=[Field(name="x2", dtype=Float64)],
    ...                         mode="python")
    ... def doubled(inputs):
    ...     return {"x2": [v * 2 for v in inputs["x"]]}
    >>> doubled.name
    'doubled'
    """

    def decorate(func: Callable[..., Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=name or func.__name__,
            sources=sources,
            schema=schema,
            udf=func,
            mode=mode,
            description=description or (inspect.getdoc(func) or ""),
            tags=tags,
            owner=owner,
            write_to_online_store=write_to_online_store,
            entities=entities,
            singleton=singleton,
        )

    return decorate
