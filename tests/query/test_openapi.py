"""The OpenAPI document: valid, complete, and true of a running server (schemathesis)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Route

from drainpipe import __version__
from drainpipe.clock import FixedClock
from drainpipe.config import Config
from drainpipe.service import http
from drainpipe.service.pipeline import Pipeline
from tests.conftest import FIXED_NOW_MS
from tests.support import drains

DOC = http.api_document()
# Rules across parameters (start before end, at most 400 days, 20,160 points) are beyond
# JSON Schema, so a schema-valid request may be a 400; its answer is still checked.
RULES = [positive_data_acceptance]


@schemathesis.serializer("application/logplex-1")
def _logplex(_ctx: Any, value: Any) -> bytes:
    """Generated drain bodies: whatever text was drawn, as bytes."""
    return str(value).encode()


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOC)
    assert DOC["openapi"] == "3.1.0" and DOC["info"]["version"] == __version__


def test_every_route_is_documented_and_every_documented_path_is_served(tmp_path: Path) -> None:
    config = replace(Config(), data_dir=tmp_path, workers=0)
    pipeline = Pipeline(config, clock=FixedClock(FIXED_NOW_MS))
    try:
        asgi = pipeline.http_app()
        others = asgi.__closure__  # the dispatcher closes over the Starlette app
        assert others is not None
        starlette = next(c.cell_contents for c in others if hasattr(c.cell_contents, "routes"))
        served = {
            (r.path, m.lower())
            for r in starlette.routes
            if isinstance(r, Route)
            for m in (r.methods or ())
            if m != "HEAD"
        } | {("/logs", "post")}
        documented = {(path, m) for path, ops in DOC["paths"].items() for m in ops}
        assert served == documented
    finally:
        pipeline.stop()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Pipeline, dict[str, str]]]:
    """`up`'s HTTP app in process, with an app that has data and events, and tokens."""
    config = replace(Config(), data_dir=tmp_path, flush_interval_s=0.05, workers=0)
    pipeline = Pipeline(config, clock=FixedClock(FIXED_NOW_MS))
    pipeline.start_stages()
    shop = pipeline.registry.create("shop")
    pipeline.registry.create("blog")
    t = FIXED_NOW_MS - 5 * 60_000
    lines = [
        drains.router(t + i * 1000, 5 + i, 200 if i % 4 else 503, code=None) for i in range(20)
    ]
    lines += [drains.memory(t, "web.1", 100.0, 90.0, 1.0, 512.0)]
    lines += [drains.event(t, "app", "api", "Release v16 created by user a@example.com")]
    lines += [drains.event(t, "app", "web.1", "measure#db.query=12ms count#signups=1")]
    frames = [line.encode() for line in lines]
    accepted = pipeline.acceptor.submit(shop.app.id, "f1", _records(shop.app.id, frames))
    assert accepted.result(10)
    tokens = {"own": shop.api_token, "team": pipeline.registry.create_token(["shop"])[1]}
    yield pipeline, tokens
    pipeline.stop()


def _records(owner: str, frames: list[bytes]) -> Any:
    from drainpipe.ingest import records

    return records.build(owner, frames, FIXED_NOW_MS, 300_000).records


def test_every_answer_matches_the_document_and_none_is_a_5xx(
    live: tuple[Pipeline, dict[str, str]],
) -> None:
    """Generated requests to every operation, with each kind of token (and none for the
    drain and health endpoints): every answer is documented, none is a 5xx."""
    pipeline, tokens = live
    schema = schemathesis.openapi.from_asgi("/openapi.json", pipeline.http_app())
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Loaded from the server, the document's own path is left out; the rest is all.
    labels = {op.label for op in operations}
    assert labels == {f"{m.upper()} {p}" for p, ops in DOC["paths"].items() for m in ops} - {
        "GET /openapi.json"
    }
    seen: dict[str, set[int]] = defaultdict(set)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def each(case: Any) -> None:
            label = case.operation.label
            if case.path in ("/logs", "/healthz", "/metrics", "/openapi.json"):
                seen[label].add(case.call_and_validate(excluded_checks=RULES).status_code)
                return
            for token in tokens.values():
                auth = {"Authorization": f"Bearer {token}"}
                seen[label].add(
                    case.call_and_validate(headers=auth, excluded_checks=RULES).status_code
                )
                if "name" in case.path_parameters:  # and the app that has data
                    case.path_parameters["name"] = "shop"
                    got = case.call_and_validate(headers=auth, excluded_checks=RULES)
                    seen[label].add(got.status_code)

        each()
    # Not only refusals: every read operation answered, and was checked, with data.
    assert all(
        200 in statuses for label, statuses in seen.items() if label.startswith("GET /api/")
    ), seen
    assert 201 in seen["POST /api/v1/apps/{name}/alerts"], seen
