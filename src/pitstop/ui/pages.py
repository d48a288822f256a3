"""The UI's pages and its navigation: the one place where a page is added.

A page is a path pattern, a title and a handler (``Request`` in, ``Response`` out, usually
``render(request, "template.html", ...)``). :data:`MODULES` lists the modules whose
:func:`page` declarations make up the UI; they are imported when the first UI app is built,
never by ``import pitstop``. To add a section (for example data-quality reports), write a
module of pages and name it in :data:`MODULES`::

    # pitstop/ui/quality.py
    from pitstop.ui.pages import page
    from pitstop.ui.render import render

    @page("/quality/drift", "Drift", nav="Quality")
    def drift(request):
        return render(request, "quality_drift.html", reports=...)

A page about one object (``on=("feature_view",)``, a path with ``{collection}`` and
``{name}``) is linked from that object's page. Templates are looked up in
``pitstop/ui/templates/``; a page's template extends ``base.html`` (header, navigation,
search box) and fills its ``content`` block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from pitstop.ui.http import Handler

__all__ = ["MODULES", "NAV_SECTIONS", "Page", "about", "load", "nav", "page", "registered"]

#: The modules declaring the UI's pages, in navigation order.
MODULES: list[str] = [
    "pitstop.ui.signin",  # sign in and out
    "pitstop.ui.views",  # overview, search, object lists
    "pitstop.ui.detail",  # an object: spec, versions and diffs, lineage, freshness, samples
    "pitstop.ui.lookup",  # online lookup form
    "pitstop.ui.audit",  # audit trail
    # data-quality reports (drift, validation, profiles): add their module here
]

#: Sections of the navigation, in order; a page names the section it is listed under.
NAV_SECTIONS: list[str] = ["Catalog", "Serving", "Governance"]


@dataclass(frozen=True)
class Page:
    """A routed page; ``nav`` is its section in the navigation (None: not listed)."""

    path: str
    title: str
    handler: Handler
    nav: str | None = None
    method: str = "GET"
    public: bool = False  # served without signing in (the login page itself)
    on: tuple[str, ...] = ()  # kinds whose pages link to this one ({collection}, {name} filled)


_PAGES: list[Page] = []


def page(
    path: str,
    title: str,
    *,
    nav: str | None = None,
    method: str = "GET",
    public: bool = False,
    on: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Declare a page: ``@page("/audit", "Audit trail", nav="Governance")``. A page about
    one object names the kinds it is for, and their pages link to it::

        @page("/{collection}/{name}/drift", "Drift", on=("feature_view",))
    """

    def declare(handler: Handler) -> Handler:
        if nav is not None and nav not in NAV_SECTIONS:
            NAV_SECTIONS.append(nav)
        _PAGES.append(Page(path, title, handler, nav, method, public, tuple(on)))
        return handler

    return declare


def load() -> list[Page]:
    """Import :data:`MODULES` (once) and return every declared page, in declaration order."""
    for name in MODULES:
        importlib.import_module(name)
    return list(_PAGES)


def registered() -> list[Page]:
    return list(_PAGES)


def about(kind: str) -> list[Page]:
    """The pages declared ``on`` a kind of object (linked from each object's page)."""
    return [p for p in _PAGES if kind in p.on]


def nav() -> list[tuple[str, list[Page]]]:
    """The navigation: each section with its pages."""
    return [(s, [p for p in _PAGES if p.nav == s]) for s in NAV_SECTIONS
            if any(p.nav == s for p in _PAGES)]  # fmt: skip
