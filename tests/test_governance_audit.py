"""The consent ledger as an audit log: a rewritten chain verifies; an anchored head catches it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from sscity.governance.audit import (
    Anchor,
    anchor_head,
    append_anchor,
    check_anchor,
    check_anchors,
    head_hash,
    load_anchors,
    rewrite_chain,
    sign,
)
from sscity.platform.consent import GENESIS, ConsentLedger

KEY = bytes(range(32))  # a test key; in use: secrets.token_bytes(32), stored apart from the ledger


def _ledger() -> ConsentLedger:
    ledger = ConsentLedger()
    ledger.grant("r1", "bus", "booking", at="2024-05-01T09:00:00Z")
    ledger.check_access("r1", "bus", "booking", at="2024-05-01T10:00:00Z", detail="urn:ngsi-ld:Person:r1")
    ledger.grant("r2", "clinic", "checkup", at="2024-05-01T11:00:00Z")
    ledger.revoke("r1", "bus", "booking", at="2024-05-02T09:00:00Z")
    ledger.check_access("r1", "bus", "booking", at="2024-05-03T09:00:00Z")
    return ledger


def _independent_chain_ok(ledger: ConsentLedger) -> bool:
    """Recompute the chain from the record fields with hashlib and json alone (not the ledger's code)."""
    previous = "0" * 64
    for seq, record in enumerate(ledger.records):
        fields = {"seq": seq, "at": record.at, "resident": record.resident, "recipient": record.recipient,
                  "purpose": record.purpose, "action": record.action, "detail": record.detail,
                  "prev_hash": previous}
        text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        if record.prev_hash != previous or hashlib.sha256(text.encode()).hexdigest() != record.hash:
            return False
        previous = record.hash
    return True


def test_sign_is_hmac_sha256_rfc_4231_test_case_2():
    # RFC 4231, section 4.3 (test case 2): key "Jefe", data "what do ya want for nothing?".
    assert sign("what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_honest_chain_verifies_with_and_without_the_anchor():
    ledger = _ledger()
    assert ledger.verify() == [] and _independent_chain_ok(ledger)
    anchor = anchor_head(ledger, at="2024-05-03T12:00:00Z", key=KEY)
    assert anchor.length == 5 and anchor.head == head_hash(ledger) == ledger.records[-1].hash
    assert check_anchor(ledger, anchor, key=KEY).ok
    assert check_anchor(ledger, replace(anchor, signature="")).ok  # the head alone, no key
    # Records appended after the anchor are allowed (and unprotected until the next anchor).
    ledger.grant("r3", "bus", "booking", at="2024-05-04T09:00:00Z")
    assert check_anchor(ledger, anchor, key=KEY).ok
    assert head_hash(ConsentLedger()) == GENESIS


def test_naive_edit_is_caught_by_the_chain_itself():
    ledger = _ledger()
    records = [r.__dict__.copy() for r in ledger.records]
    records[1]["action"] = "access-denied"  # edit without recomputing the hashes
    with pytest.raises(ValueError, match="not intact"):
        ConsentLedger(records)


@pytest.mark.parametrize("forge", [
    lambda ledger: rewrite_chain(ledger, 1, action="access-denied"),  # hide that data was read
    lambda ledger: rewrite_chain(ledger, 3, drop=True),               # hide a revocation
    lambda ledger: rewrite_chain(ledger, 0, at="2024-05-01T08:00:00Z", recipient="clinic"),
])
def test_rewritten_chain_verifies_without_anchor_but_fails_against_it(forge):
    ledger = _ledger()
    anchor = anchor_head(ledger, at="2024-05-03T12:00:00Z", key=KEY)
    forged = forge(ledger)
    # The limit: the forgery is a valid chain, by the ledger's check and by an independent one.
    assert forged.verify() == [] and _independent_chain_ok(forged)
    assert [r.hash for r in forged.records] != [r.hash for r in ledger.records]
    # The fix: the head kept apart no longer matches.
    result = check_anchor(forged, anchor, key=KEY)
    assert not result.ok and not bool(result)
    assert all(" / " in problem for problem in result.problems)
    assert check_anchor(ledger, anchor, key=KEY).ok  # the original is untouched


def test_an_unsigned_anchor_can_be_forged_too_a_signed_one_cannot():
    ledger = _ledger()
    forged = rewrite_chain(ledger, 1, action="access-denied")
    # A rewriter who can also edit the anchors file re-anchors the forgery ...
    fake = anchor_head(forged, at="2024-05-03T12:00:00Z")
    assert check_anchor(forged, fake).ok  # ... and without a key nobody can tell.
    # Signed with a key the rewriter does not hold: a copied signature or another key fails.
    real = anchor_head(ledger, at="2024-05-03T12:00:00Z", key=KEY)
    copied = replace(fake, signature=real.signature)
    assert not check_anchor(forged, copied, key=KEY).ok
    other_key = anchor_head(forged, at="2024-05-03T12:00:00Z", key=b"not-the-city-key-0123456789")
    assert not check_anchor(forged, other_key, key=KEY).ok
    assert not check_anchor(forged, fake, key=KEY).ok  # unsigned anchors fail when a key is required


def test_truncation_below_the_anchor_is_reported():
    ledger = _ledger()
    anchor = anchor_head(ledger, at="2024-05-03T12:00:00Z")
    short = ConsentLedger(ledger.records[:3])
    result = check_anchor(short, anchor)
    assert not result.ok and "fewer" in result.problems[0]


def test_anchors_file_round_trip_and_table(tmp_path):
    ledger = _ledger()
    path = tmp_path / "anchors.jsonl"
    first = anchor_head(ConsentLedger(ledger.records[:2]), at="2024-05-01T12:00:00Z", key=KEY)
    append_anchor(path, first)
    append_anchor(path, anchor_head(ledger, at="2024-05-03T12:00:00Z", key=KEY))
    anchors = load_anchors(path)
    assert anchors[0] == first and len(anchors) == 2
    table = check_anchors(ledger, anchors, key=KEY)
    assert list(table["ok"]) == [True, True]
    forged = rewrite_chain(ledger, 3, drop=True)  # after the first anchor, before the second
    assert list(check_anchors(forged, anchors, key=KEY)["ok"]) == [True, False]


def test_bad_inputs_are_refused_with_a_reason(tmp_path):
    ledger = _ledger()
    for bad in [dict(position=5), dict(position=-1), dict(position=True), dict(position=0, seq=9),
                dict(position=0, drop=True, action="grant")]:
        with pytest.raises(ValueError, match=" / "):
            rewrite_chain(ledger, **bad)
    with pytest.raises(ValueError, match=" / "):
        anchor_head(ledger, key=b"short")
    with pytest.raises(ValueError, match=" / "):
        head_hash([1, 2])
    with pytest.raises(ValueError, match=" / "):
        check_anchor(ledger, {"length": 1})
    with pytest.raises(ValueError):
        anchor_head(ledger, at="yesterday")
    path = tmp_path / "anchors.jsonl"
    path.write_text('{"length": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="Line 1"):
        load_anchors(path)
    assert isinstance(anchor_head(ledger, at="2024-05-03T12:00:00Z"), Anchor)
