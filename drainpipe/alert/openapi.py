"""The alerts API's part of the OpenAPI document: `paths` and `ALERT_SCHEMAS`."""

from __future__ import annotations

from typing import Any

from drainpipe.alert import rules

_JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the app's name",
    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,62}$"},
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_TIME = {"type": "string", "description": "ISO 8601, e.g. 2026-11-21T10:00:00Z"}
_NULLABLE_TEXT = {"type": ["string", "null"]}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "the rule or a parameter is wrong; `error` says which and why",
        401: "no API token, or an unknown one",
        403: "the token may not read this app (or, to change rules, is not the app's own)",
        404: "no such rule",
    }
    return {str(c): _answer(text[c], _ERROR) for c in codes}


_FIELDS: dict[str, Any] = {
    "metric": {
        "description": rules.METRIC_HELP,
        "anyOf": [
            {"enum": ["latency_p95", "error_rate", "memory_quota", "load", "throughput_below"]},
            {"type": "string", "pattern": "^errors:H[0-9]{1,4}$"},
            {
                "type": "string",
                "pattern": r"^custom\.[A-Za-z0-9_.\-]{1,200}:("
                + "|".join(rules.CUSTOM_FIELDS)
                + ")$",
            },
        ],
    },
    "threshold": {"type": "number"},
    "process_type": {"type": "string", "default": "web"},
    "sensitivity": {"type": "integer", "enum": list(rules.SENSITIVITIES), "default": 5},
    "renotify": {"type": "integer", "enum": list(rules.RENOTIFY), "default": 60},
    "webhook": {
        "type": ["string", "null"],
        "pattern": "^https?://",
        "description": "URL for signed JSON notices; a public address unless the server "
        "allows its network (DRAINPIPE_ALERT_ALLOW_NETS); shown masked when read",
    },
    "slack": {
        "type": ["string", "null"],
        "pattern": "^https?://",
        "description": "Slack-compatible incoming-webhook URL; shown masked when read",
    },
    "email": {"type": "array", "items": {"type": "string", "pattern": "@"}},
}
ALERT_SCHEMAS: dict[str, Any] = {
    "NewRule": {
        "type": "object",
        "required": ["metric", "threshold"],
        "properties": _FIELDS,
        "additionalProperties": False,
    },
    "Rule": {
        "type": "object",
        "required": ["id", "app", "metric", "threshold", "process_type", "sensitivity"],
        "properties": {
            **_FIELDS,
            "id": {"type": "string"},
            "app": {"type": "string"},
            "unit": {"type": "string"},
            "created": _TIME,
            "webhook_secret": {
                "type": "string",
                "description": "HMAC-SHA256 key of X-Drainpipe-Signature; in the answer "
                "to the rule's creation only",
            },
        },
    },
    "Rules": {
        "type": "object",
        "required": ["app", "rules"],
        "properties": {
            "app": {"type": "string"},
            "rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}},
        },
    },
    "AlertHistory": {
        "type": "object",
        "required": ["app", "start", "end", "history"],
        "properties": {
            "app": {"type": "string"},
            "start": _TIME,
            "end": _TIME,
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule_id", "state", "minute", "threshold"],
                    "properties": {
                        "rule_id": {"type": "string"},
                        "metric": {"type": "string"},
                        "process_type": {"type": "string"},
                        "state": {"enum": ["firing", "reminder", "resolved", "no_data"]},
                        "minute": _TIME,
                        "minute_ms": {"type": "integer"},
                        "value": {"type": ["number", "null"]},
                        "threshold": {"type": "number"},
                        "sent": {"type": ["string", "null"]},
                        "error": _NULLABLE_TEXT,
                    },
                },
            },
        },
    },
}


def paths() -> dict[str, Any]:
    auth: list[dict[str, list[str]]] = [{"token": []}]
    return {
        "/api/v1/apps/{name}/alerts": {
            "get": {
                "summary": "The app's alert rules",
                "security": auth,
                "parameters": [_NAME],
                "responses": {
                    "200": _answer("the rules", {"$ref": "#/components/schemas/Rules"}),
                    **_errors(401, 403),
                },
            },
            "post": {
                "summary": "Add an alert rule (the fields of `drainpipe alerts add`); "
                "the app's own API token only",
                "security": auth,
                "parameters": [_NAME],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/NewRule"}}},
                },
                "responses": {
                    "201": _answer("the rule", {"$ref": "#/components/schemas/Rule"}),
                    **_errors(400, 401, 403),
                },
            },
        },
        "/api/v1/apps/{name}/alerts/history": {
            "get": {
                "summary": "Every firing, reminder, recovery and no-data notice in [start, end)",
                "security": auth,
                "parameters": [
                    _NAME,
                    {"name": "start", "in": "query", "required": False, "schema": _TIME},
                    {"name": "end", "in": "query", "required": False, "schema": _TIME},
                ],
                "responses": {
                    "200": _answer("the notices", {"$ref": "#/components/schemas/AlertHistory"}),
                    **_errors(400, 401, 403),
                },
            }
        },
        "/api/v1/apps/{name}/alerts/{id}": {
            "delete": {
                "summary": "Remove an alert rule; the app's own API token only",
                "security": auth,
                "parameters": [_NAME, _ID],
                "responses": {
                    "200": _answer(
                        "removed",
                        {
                            "type": "object",
                            "required": ["id", "removed"],
                            "properties": {"id": {"type": "string"}, "removed": {"const": True}},
                        },
                    ),
                    **_errors(401, 403, 404),
                },
            }
        },
    }
