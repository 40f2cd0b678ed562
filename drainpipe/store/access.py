"""Who may read what: a request's bearer token, checked against the registry for an app.

Every HTTP surface that serves an app's data (the Metrics API, the alerts API) asks
here, so a token reads exactly the same apps everywhere, and the answer for an app it
may not read is the same whether or not that app exists.
"""

from __future__ import annotations

from drainpipe.store.apps import Access, App, AppRegistry


class Denied(Exception):
    """The request may not go on: HTTP `status` (401 or 403), and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def access_of(registry: AppRegistry, authorization: str) -> Access:
    """What the token of an `Authorization` header reads; Denied (401) without one."""
    if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
        raise Denied(401, "missing 'Authorization: Bearer <api_token>'")
    access = registry.access(authorization[7:].strip())
    if access is None:
        raise Denied(401, "unknown API token")
    return access


def authorize(registry: AppRegistry, authorization: str, name: str, manage: bool = False) -> App:
    """The app named `name`, if the header's token may read it (and, with `manage`,
    change its settings, which only the app's own token may); Denied otherwise."""
    access = access_of(registry, authorization)
    if access.own is not None:
        if access.own.name != name:
            raise Denied(403, f"this token is for app {access.own.name!r}, not {name!r}")
        return access.own
    app = registry.by_name(name)
    if app is None or not access.reads(app):
        # The same answer whether or not the app exists: a token learns only its own.
        raise Denied(403, f"this token may not read an app named {name!r}")
    if manage:
        raise Denied(
            403,
            f"team tokens only read; change the alert rules of {name!r} with its own API token "
            f"(`drainpipe apps rotate {name} --api-token` makes a new one) or with "
            "`drainpipe alerts` on the server",
        )
    return app
