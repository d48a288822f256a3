"""The feature server against its own OpenAPI document, with Schemathesis.

A real ``pitstop serve`` runs over the repo ``pitstop init`` creates (applied), so the
document's examples are real requests: the first tests send each once (they write and
materialize data the later requests read). Schemathesis sends each endpoint the examples
and bodies derived from the schemas (valid and invalid), and checks every answer:
no 5xx, the status and the body as documented, invalid bodies rejected. A few examples per
endpoint keep it under a minute; ``make fuzz`` runs many more (``PITSTOP_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from pitstop.server import openapi
from test_server import start_cli, stop

EXAMPLES = int(os.environ.get("PITSTOP_FUZZ_EXAMPLES", "10"))
# What JSON Schema cannot state, the document describes: columns of equal length, keys and
# columns the registry's views need with their types, start_ts not after end_ts, an
# incremental end not before the view's watermark. A body that is valid by the schemas but
# breaks one of those is a 400/422 with the error body (which the other checks hold to the
# document), so the check that every schema-valid body is accepted does not apply.
SKIPPED = [checks.positive_data_acceptance]


def _pitstop(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "pitstop.cli.main", *args], cwd=cwd, check=True,
                   capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def init_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schema")
    _pitstop("init", "repo", "--users", "20", cwd=root)
    _pitstop("-c", "repo", "apply", cwd=root)  # not materialized: the examples do that
    with (root / "serve.log").open("wb") as log:
        proc, url = start_cli(root / "repo", "--registry-ttl-sec", "0", log=log)
        yield url
        stop(proc)


# The document the server serves (a test below checks that it serves exactly this one).
schema = schemathesis.openapi.from_dict(openapi.document())


def test_the_server_serves_the_document(init_server: str) -> None:
    assert httpx.get(f"{init_server}/openapi.json").json() == openapi.document()


def test_every_example_of_the_document_works_on_the_init_repo(init_server: str) -> None:
    doc = openapi.document()
    sent = 0
    for path, ops in doc["paths"].items():
        body = ops.get("post", {}).get("requestBody")
        if body is None:
            continue
        for example in body["content"]["application/json"]["examples"].values():
            r = httpx.post(f"{init_server}{path}", json=example["value"], timeout=30)
            assert r.status_code == 200, (path, r.text)
            sent += 1
    assert sent == 6
    r = httpx.post(f"{init_server}/get-online-features",
                   json=doc["paths"]["/get-online-features"]["post"]["requestBody"]["content"][
                       "application/json"]["examples"]["features"]["value"])  # fmt: skip
    assert r.json()["metadata"]["feature_names"] == [
        "user_id", "total_purchases", "avg_purchase_amount", "purchase_frequency"]  # fmt: skip


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_server_keeps_its_openapi_document(case: Any, init_server: str) -> None:
    case.call_and_validate(base_url=init_server, excluded_checks=SKIPPED, timeout=30)
