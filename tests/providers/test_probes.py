"""How a probe reads a failed key check: by the wire's own error dialect where it has one."""

from __future__ import annotations

from providers.contract import ErrorClass, WireProtocol
from providers.probes import CLASSIFIERS
from tests.emulators import elevenlabs as el


def test_elevenlabs_key_check_reads_the_body_so_an_empty_quota_is_not_a_bad_key() -> None:
    scenario = el.quota_exceeded()
    assert scenario.status == 401
    classify = CLASSIFIERS[WireProtocol.ELEVENLABS]
    error = classify(scenario.status, scenario.body, scenario.headers, "elevenlabs:default", ())
    assert error.error_class is ErrorClass.QUOTA_EXHAUSTED
    assert error.provider == "elevenlabs:default"
