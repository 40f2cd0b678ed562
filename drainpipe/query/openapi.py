"""The OpenAPI 3.1 document of drainpipe's HTTP surface, served at /openapi.json.

Written out rather than derived from the handlers, so that it states the contract the
handlers are tested against (tests/query/test_openapi.py validates it and runs
schemathesis over it: no 5xx, every answer as described).
"""

from __future__ import annotations

from typing import Any

from drainpipe.model import SKIP_REASONS
from drainpipe.query.api import LATE_FAMILIES, WINDOWS
from drainpipe.query.downsample import METRICS

JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_TIME = {"type": "string", "format": "date-time"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "a parameter is wrong; `error` says which and why",
        401: "no API token, or an unknown one",
        403: "the token may not read this app",
        404: "no such metric",
        503: "what was asked for is stored on a shard that does not answer: retry (Retry-After)",
    }
    return {str(c): _answer(text[c], _ERROR) for c in codes}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the app's name",
    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,62}$"},
}
_RANGE = [
    _query(
        "window",
        "Heroku's window ending now, at its resolution (1 min, 10 min, 1 h, 2 h)",
        {"type": "string", "enum": list(WINDOWS)},
    ),
    _query("start", "ISO 8601 time (UTC if no offset); default: end - the window", _TIME),
    _query("end", "ISO 8601 time; default: now", _TIME),
]
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Point": {
        "type": "object",
        "required": ["t"],
        "properties": {"t": _TIME},
        "additionalProperties": {"type": ["number", "null"]},
    },
    "Series": {
        "type": "object",
        "required": ["process_type", "points"],
        "properties": {
            "process_type": {"type": "string"},
            "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
        },
    },
    "Metric": {
        "type": "object",
        "required": ["app", "metric", "step", "start", "end", "series"],
        "properties": {
            "app": {"type": "string"},
            "metric": {"type": "string"},
            "step": {"type": "integer", "minimum": 60},
            "start": _TIME,
            "end": _TIME,
            "series": {"type": "array", "items": {"$ref": "#/components/schemas/Series"}},
            "partial": {"$ref": "#/components/schemas/Partial"},
        },
    },
    "Partial": {
        "type": "object",
        "description": "present when store shards did not answer: the answer lacks the "
        "app's series stored there",
        "required": ["missing_shards", "reason"],
        "properties": {
            "missing_shards": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "reason": {"type": "string"},
        },
    },
    "Events": {
        "type": "object",
        "required": ["app", "events"],
        "properties": {
            "app": {"type": "string"},
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["t", "ts_ms", "kind", "process_type", "source", "text", "attrs"],
                    "properties": {
                        "t": _TIME,
                        "ts_ms": {"type": "integer"},
                        "kind": {"type": "string"},
                        "process_type": {"type": "string"},
                        "source": {"type": "string"},
                        "text": {"type": "string"},
                        "attrs": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
            "partial": {"$ref": "#/components/schemas/Partial"},
        },
    },
    "Apps": {
        "type": "object",
        "required": ["apps"],
        "properties": {
            "apps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "url"],
                    "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
                },
            }
        },
    },
    "App": {
        "type": "object",
        "required": [
            "app",
            "process_types",
            "metrics",
            "first_data",
            "last_data",
            "retention",
            "start",
            "end",
            "dropped",
        ],
        "properties": {
            "app": {"type": "string"},
            "process_types": {"type": "array", "items": {"type": "string"}},
            "metrics": {"type": "array", "items": {"type": "string"}},
            "first_data": {"type": ["string", "null"], "format": "date-time"},
            "last_data": {"type": ["string", "null"], "format": "date-time"},
            "retention": {"type": "object", "additionalProperties": {"type": "string"}},
            "start": _TIME,
            "end": _TIME,
            "dropped": {
                "type": "object",
                "required": ["total", "late", "skipped"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "late": {
                        "type": "object",
                        "required": list(LATE_FAMILIES),
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "skipped": {
                        "type": "object",
                        "required": list(SKIP_REASONS),
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "partial": {"$ref": "#/components/schemas/Partial"},
        },
    },
}


def _page(summary: str) -> dict[str, Any]:
    """A dashboard page: the same static HTML shell, which draws from this API."""
    return {
        "summary": summary,
        "responses": {
            "200": {
                "description": "the page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    }


def document(version: str) -> dict[str, Any]:
    """The whole document; `version` is drainpipe's."""
    auth: list[dict[str, list[str]]] = [{"token": []}]
    metric_names = ", ".join(f"`{m}`" for m in METRICS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "drainpipe",
            "version": version,
            "description": "Heroku-grade metrics from Logplex HTTPS log drains. The read API "
            "takes an app's API token or a team read token as `Authorization: Bearer`.",
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "drain": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "the drain secret as the password",
                },
            },
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/api/v1/apps": {
                "get": {
                    "summary": "The apps the token may read",
                    "security": auth,
                    "responses": {
                        "200": _answer("the apps", {"$ref": "#/components/schemas/Apps"}),
                        **_errors(401),
                    },
                }
            },
            "/api/v1/apps/{name}": {
                "get": {
                    "summary": "An app's catalogue and what it lost (late and skipped lines)",
                    "security": auth,
                    "parameters": [_NAME, *_RANGE],
                    "responses": {
                        "200": _answer("the catalogue", {"$ref": "#/components/schemas/App"}),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
            "/api/v1/apps/{name}/metrics/{metric}": {
                "get": {
                    "summary": "One metric's points per process type",
                    "description": f"Metrics: {metric_names}, and `custom.<name>` for the "
                    "app's own count#, sample# and measure# metrics.",
                    "security": auth,
                    "parameters": [
                        _NAME,
                        {
                            "name": "metric",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "anyOf": [
                                    {"enum": list(METRICS)},
                                    {
                                        "type": "string",
                                        "pattern": r"^custom\.[A-Za-z0-9_.\-]{1,200}$",
                                    },
                                ]
                            },
                        },
                        *_RANGE,
                        _query(
                            "step",
                            "seconds between points, a multiple of 60; default: the window's",
                            {"type": "integer", "minimum": 60, "multipleOf": 60},
                        ),
                        _query("process_type", "only this process type", {"type": "string"}),
                    ],
                    "responses": {
                        "200": _answer("the points", {"$ref": "#/components/schemas/Metric"}),
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/api/v1/apps/{name}/events": {
                "get": {
                    "summary": "Platform events: releases, deploys, scaling, crashes, R14/R15",
                    "security": auth,
                    "parameters": [_NAME, *_RANGE],
                    "responses": {
                        "200": _answer("the events", {"$ref": "#/components/schemas/Events"}),
                        **_errors(400, 401, 403, 503),
                    },
                }
            },
            "/logs": {
                "post": {
                    "summary": "The Logplex drain endpoint: octet-counted syslog frames",
                    "security": [{"drain": []}],
                    "parameters": [
                        {
                            "name": "Logplex-Msg-Count",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "Logplex-Frame-Id",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/logplex-1": {"schema": {"type": "string"}}},
                    },
                    "responses": {
                        "204": {
                            "description": "every line is stored (durable) or counted as skipped"
                        },
                        **{
                            code: {
                                "description": text,
                                "content": {"text/plain": {"schema": {"type": "string"}}},
                            }
                            for code, text in (
                                ("400", "bad framing, message count or gzip"),
                                ("401", "no drain secret, or an unknown one"),
                                ("408", "the body did not come in time"),
                                ("413", "the body is over the limit"),
                                ("415", "not application/logplex-1, or an unknown encoding"),
                                ("503", "not stored: retry (Retry-After)"),
                            )
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Each stage's health; 503 while one is failing",
                    "responses": {
                        "200": _answer("every stage is well", {"type": "object"}),
                        "503": _answer("a stage is failing", {"type": "object"}),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _answer("the OpenAPI document", {"type": "object"})},
                }
            },
            "/": {"get": _page("The dashboard: the apps the signed-in token may read")},
            "/apps/{name}": {
                "get": {
                    **_page(
                        "The dashboard: an app's charts. The page reads `window` (2h, 24h, "
                        "72h, 7d), `process_type`, and `start`/`end` after a zoom, and takes "
                        "a token in the URL fragment (`#token=`), which no server sees"
                    ),
                    "parameters": [_NAME],
                }
            },
            "/metrics": {
                "get": {
                    "summary": "drainpipe's own counters, Prometheus text format",
                    "responses": {
                        "200": {
                            "description": "the counters",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
