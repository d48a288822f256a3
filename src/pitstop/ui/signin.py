"""Signing in and out: the token (an API key or a JSON Web Token) is checked the way the
feature server checks it, then kept in an HttpOnly, SameSite=Strict cookie (base64url of the
token; scripts cannot read it, other sites cannot send it)."""

from __future__ import annotations

from pitstop.server.errors import HTTPError
from pitstop.ui.app import clear_cookie, local_target, set_cookie
from pitstop.ui.http import Request, Response
from pitstop.ui.pages import page
from pitstop.ui.render import render


@page("/login", "Sign in", public=True)
def login_form(request: Request) -> Response:
    target = local_target(request.arg("next"), request.base)
    return render(request, "login.html", title="Sign in", error=None, next=target)


@page("/login", "Sign in", method="POST", public=True)
def login(request: Request) -> Response:
    ui = request.ui
    target = local_target(request.arg("next"), request.base)
    token = request.arg("token")
    if ui.keys is None:
        return Response.redirect(target)
    try:
        if not token or any(c.isspace() for c in token):
            raise HTTPError(401, "Unauthorized", "enter an API key or a token (no spaces)")
        ui.verify(b"Bearer " + token.encode(), request.client)
    except HTTPError as exc:
        ui.record_denial(request, exc)
        return render(request, "login.html", status=401, title="Sign in", error=str(exc),
                      next=target)  # fmt: skip
    response = Response.redirect(target)
    response.headers.append(set_cookie(token, request.base, request.scheme == "https"))
    return response


@page("/logout", "Sign out", method="POST", public=True)
def logout(request: Request) -> Response:
    response = Response.redirect(request.url("/login"))
    response.headers.append(clear_cookie(request.base))
    return response
