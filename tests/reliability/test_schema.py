"""schemathesis against the service's own OpenAPI document, over the wire of a production-wired
replica: generated requests, valid and deliberately invalid, never get a 5xx, invalid ones are
refused, and every answer matches the document — status, content type, headers and body.
Bounded: a fixed number of examples per operation and generation mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.reliability.stack import Replica, gateway_headers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka]

EXAMPLES = 25
USER = 5150


def _fuzz(url: str) -> tuple[list[str], list[str]]:
    """Every operation, positive then negative data; answers (operations run, failures)."""
    loaded = schemathesis.openapi.from_url(f"{url}/schema/openapi.json", timeout=10)
    ran: list[str] = []
    failures: list[str] = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        declared = {parameter.name for parameter in operation.query}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.method.upper()} {operation.path} ({mode.value})"
            ran.append(label)

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case: Any) -> None:
                # A valid request may still be refused for a reason the document cannot
                # encode (an unknown show, taken seats): conformance is the rule here.
                excluded = [positive_data_acceptance]
                if set(case.query or {}) - declared:  # noqa: B023 - run() is called at once
                    # Unknown query parameters are ignored, as HTTP APIs commonly do; any
                    # other invalid part of a request must still be refused.
                    excluded.append(negative_data_rejection)
                case.call_and_validate(
                    base_url=url,
                    headers=gateway_headers(USER),
                    timeout=15,
                    excluded_checks=excluded,
                )

            try:
                run()
            except Unsatisfiable:
                ran.pop()  # an operation without inputs has no invalid form
            except Exception as exc:  # every operation's failure is reported, not the first
                failures.append(f"{label}: {str(exc)[:1500]}")
    return ran, failures


async def test_every_answer_matches_the_document(replicas: list[Replica]) -> None:
    """No generated request gets a 5xx, and each answer conforms to the OpenAPI document."""
    target = replicas[0]
    alive = target.process is not None and target.process.poll() is None
    assert alive, f"replica {target.name} is not running:\n{target.all_logs()[-3000:]}"
    ran, failures = await asyncio.to_thread(_fuzz, target.url)
    assert len(ran) >= 10, ran
    assert not failures, f"{len(failures)} of {len(ran)} failed:\n\n" + "\n\n".join(failures)
    log = target.all_logs()
    assert "Traceback" not in log, log[log.find("Traceback") - 500 :][:3000]
