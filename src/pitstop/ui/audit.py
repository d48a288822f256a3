"""The audit trail page: newest records first, filtered by time, principal, object, action and
outcome, and a check of the trail's hash chain.

The trail speaks of the whole project (who changed, pushed, was refused), so it is shown to
principals who may ``describe`` the project itself: everyone when the project has no access
policies; with policies, those granted ``describe`` on the kind ``project`` (a permission
without ``types`` covers every kind).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pitstop.access import Resource, authorize
from pitstop.errors import RetrievalError
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import page
from pitstop.ui.render import render
from pitstop.ui.views import paginate

OUTCOMES = ("ok", "denied", "error")


@page("/audit", "Audit trail", nav="Governance")
def audit(request: Request) -> Response:
    catalog = request.ui.store.catalog
    authorize(catalog.snapshot(), "describe", Resource("project", catalog.project))
    since = _since(request.arg("since"))
    principal, name = request.arg("principal") or None, request.arg("object") or None
    action, outcome = request.arg("action"), request.arg("outcome")
    if outcome and outcome not in OUTCOMES:
        raise RetrievalError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    records = catalog.audit_log(since=since, principal=principal, name=name)
    records = [r for r in reversed(records) if (not action or r.action.startswith(action))
               and (not outcome or r.outcome == outcome)]  # fmt: skip
    shown, number, pages = paginate(request, records)
    verification = catalog.verify_audit() if request.arg("verify") == "1" else None
    filters = {"since": request.arg("since"), "principal": principal or "",
               "object": name or "", "action": action, "outcome": outcome}  # fmt: skip
    return render(request, "audit.html", title="Audit trail", records=shown,
                  total=len(records), page=number, pages=pages, filters=filters,
                  outcomes=OUTCOMES, verification=verification)  # fmt: skip


def _since(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise RetrievalError(
            f"since {text!r} is not a date or time such as 2026-12-01 or 2026-12-01T10:00"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
