"""wire/outcome.py: the referral outcome a kiosk gets back: strict, no patient identifier, re-image needs a reason."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from dashboard import brokerctl
from wire import topics
from wire.outcome import MANAGEMENT, Outcome, parse_outcome


def outcome(**lesion) -> Outcome:
    les = {"case_id": uuid.uuid4(), "label": "L1", "management": "re-image", "reason": "Out of focus", **lesion}
    return Outcome(outcome_id=uuid.uuid4(), referral_id=uuid.uuid4(), site="hub-a", device_id="kiosk-a",
                   signed_at=datetime.now(timezone.utc), signed_by="Dr Reader", lesions=[les])


def test_an_outcome_round_trips_and_names_its_reimage_lesions():
    o = outcome()
    back = parse_outcome(o.model_dump_json())
    assert back == o and [les.label for les in back.reimage] == ["L1"]
    assert back.lesions[0].management_text == MANAGEMENT["re-image"]
    assert topics.topic("hub-a", "kiosk-a", topics.OUTCOME) == "dermkiosk/v1/hub-a/kiosk-a/outcome"
    assert topics.parse("dermkiosk/v1/hub-a/kiosk-a/outcome") == ("hub-a", "kiosk-a", "outcome")


@pytest.mark.parametrize("lesion, words", [
    ({"reason": ""}, "re-image outcome needs the reader's reason"),
    ({"reason": "Patient 943 476 5919 moved"}, "must not contain a patient identifier"),
    ({"management": "unknown"}, "Input should be"),
    ({"label": "left arm"}, "String should match pattern"),
])
def test_bad_outcomes_are_refused_naming_the_problem(lesion, words):
    with pytest.raises(ValidationError, match=words):
        outcome(**lesion)


def test_unknown_fields_are_refused():
    data = outcome().model_dump(mode="json") | {"nhs_number": "9434765919"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Outcome.model_validate(data)


def test_access_rules_a_kiosk_reads_only_its_own_outcomes_and_only_updates_writes_them():
    role = brokerctl.kiosk_role("kiosk-a", "hub-a")
    reads = {a["topic"] for a in role["acls"] if a["acltype"] == "subscribePattern"}
    writes = {a["topic"] for a in role["acls"] if a["acltype"] == "publishClientSend"}
    assert "dermkiosk/v1/hub-a/kiosk-a/outcome" in reads
    assert not any(t.endswith("/outcome") for t in writes)
    by_role = {r["rolename"]: r for r in brokerctl.base_roles()}
    assert {"acltype": "publishClientSend", "topic": "dermkiosk/v1/+/+/outcome", "priority": 0, "allow": True} \
        in by_role["updates"]["acls"]
    assert not any(a["topic"].endswith("outcome") for a in by_role["ingest"]["acls"])
