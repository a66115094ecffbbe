"""Consent-gated access to personal data: dynamic opt-in with a tamper-evident log.

The deck's common digital ID (つくパス, on the My Number card) lets a resident pass personal
data from one service to another -- Maebashi's めぶくID calls it **dynamic opt-in**: the
resident switches each data recipient on or off at any time, and every grant and revocation
is kept as evidence. This module models that, small enough to read in one sitting:

- :class:`ConsentLedger` -- an append-only list of decisions (grant, revoke, and every
  access allowed or denied), each record chained to the one before by a SHA-256 hash, so
  editing, deleting or reordering any past record is detected by :meth:`ConsentLedger.verify`.
- :func:`gated_get` -- read a resident's entity from the data platform *for* a recipient
  and purpose: allowed only while the resident's consent stands; the decision is logged
  either way.

Times are ISO 8601 strings in UTC (``"2024-05-01T09:00:00Z"``): explicit times keep a
notebook's results the same on every run.

Example
-------
>>> ledger = ConsentLedger()
>>> _ = ledger.grant("resident-001", "ondemand-bus", "booking", at="2024-05-01T09:00:00Z")
>>> ledger.allows("resident-001", "ondemand-bus", "booking", at="2024-05-01T10:00:00Z")
True
>>> _ = ledger.revoke("resident-001", "ondemand-bus", "booking", at="2024-05-02T09:00:00Z")
>>> ledger.allows("resident-001", "ondemand-bus", "booking", at="2024-05-03T09:00:00Z")
False
>>> ledger.verify()
[]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["GENESIS", "ConsentError", "ConsentLedger", "ConsentRecord", "gated_get"]

GENESIS = "0" * 64
ACTIONS = ("grant", "revoke", "access-allowed", "access-denied")


class ConsentError(PermissionError):
    """A recipient asked for personal data without the resident's consent."""


@dataclass(frozen=True)
class ConsentRecord:
    """One decision in the ledger; ``hash`` covers every other field and ``prev_hash``."""

    seq: int
    at: str
    resident: str
    recipient: str
    purpose: str
    action: str
    detail: str
    prev_hash: str
    hash: str

    def payload(self) -> dict:
        """The fields the hash is computed over (everything but the hash itself)."""
        data = asdict(self)
        data.pop("hash")
        return data


def _digest(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _utc(at: str | datetime | None) -> str:
    if at is None:
        moment = datetime.now(UTC)
    elif isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError(f"Give times with a time zone (UTC), not the naive {at!r}.")
        moment = at.astimezone(UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{at!r} is not an ISO 8601 time; write e.g. '2024-05-01T09:00:00Z'.") from None
        if moment.tzinfo is None:
            raise ValueError(f"{at!r} has no time zone; end it with 'Z' for UTC.")
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}.")
    return value


class ConsentLedger:
    """Dynamic opt-in consent, per resident, recipient and purpose, in a hash chain.

    Parameters
    ----------
    records : iterable of ConsentRecord or dict, optional
        An existing ledger (e.g. from :meth:`load`); it is verified first.
    """

    def __init__(self, records=None):
        self._records: list[ConsentRecord] = []
        for record in records or ():
            self._records.append(record if isinstance(record, ConsentRecord) else ConsentRecord(**record))
        broken = self.verify()
        if broken:
            raise ValueError(f"The ledger is not intact: record(s) {broken} fail the hash check.")

    # -- writing -----------------------------------------------------------------------
    def _append(self, resident, recipient, purpose, action, at, detail="") -> ConsentRecord:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        at = _utc(at)
        if self._records and at < self._records[-1].at:
            raise ValueError(f"Decisions are recorded in time order: {at} is before the last "
                             f"record ({self._records[-1].at}).")
        payload = {"seq": len(self._records), "at": at, "resident": _name(resident, "resident"),
                   "recipient": _name(recipient, "recipient"), "purpose": _name(purpose, "purpose"),
                   "action": action, "detail": detail,
                   "prev_hash": self._records[-1].hash if self._records else GENESIS}
        record = ConsentRecord(**payload, hash=_digest(payload))
        self._records.append(record)
        return record

    def grant(self, resident: str, recipient: str, purpose: str, at=None) -> ConsentRecord:
        """Record that ``resident`` lets ``recipient`` use their data for ``purpose``."""
        return self._append(resident, recipient, purpose, "grant", at)

    def revoke(self, resident: str, recipient: str, purpose: str, at=None) -> ConsentRecord:
        """Record that ``resident`` withdraws the consent (effective from ``at``)."""
        return self._append(resident, recipient, purpose, "revoke", at)

    def check_access(self, resident: str, recipient: str, purpose: str, at=None, detail: str = "") -> bool:
        """Decide an access request, log the decision, and return whether it is allowed."""
        allowed = self.allows(resident, recipient, purpose, at)
        action = "access-allowed" if allowed else "access-denied"
        self._append(resident, recipient, purpose, action, at, detail)
        return allowed

    # -- reading -----------------------------------------------------------------------
    @property
    def records(self) -> tuple[ConsentRecord, ...]:
        """Every record, oldest first (read-only)."""
        return tuple(self._records)

    def allows(self, resident: str, recipient: str, purpose: str, at=None) -> bool:
        """Whether the latest grant or revocation at or before ``at`` is a grant."""
        at = _utc(at)
        state = False
        for record in self._records:
            if record.at > at:
                break
            if (record.resident, record.recipient, record.purpose) == (resident, recipient, purpose):
                if record.action == "grant":
                    state = True
                elif record.action == "revoke":
                    state = False
        return state

    def recipients(self, resident: str, at=None) -> list[tuple[str, str]]:
        """The (recipient, purpose) pairs ``resident`` has switched on at ``at``."""
        pairs = {(r.recipient, r.purpose) for r in self._records if r.resident == resident}
        return sorted(p for p in pairs if self.allows(resident, *p, at=at))

    def verify(self) -> list[int]:
        """Positions of records whose hash or link to the previous record is wrong (empty if intact)."""
        broken, previous = [], GENESIS
        for position, record in enumerate(self._records):
            if (record.seq != position or record.prev_hash != previous
                    or _digest(record.payload()) != record.hash):
                broken.append(position)
            previous = record.hash
        return broken

    def to_dataframe(self):
        """The ledger as a pandas DataFrame, one row per record."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self._records],
                            columns=[f for f in ConsentRecord.__dataclass_fields__])

    # -- files ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the ledger as JSON lines (one record a line)."""
        path = Path(path)
        path.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in self._records),
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> ConsentLedger:
        """Read a ledger written by :meth:`save`; raise ``ValueError`` if it was tampered with."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(json.loads(line) for line in lines if line.strip())

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"ConsentLedger({len(self._records)} records, intact={not self.verify()})"


def gated_get(client, ledger: ConsentLedger, entity_id: str, recipient: str, purpose: str, at=None,
              resident_attribute: str = "refResident", **get_options) -> dict:
    """Read a personal-data entity for ``recipient``, only with the resident's consent.

    The entity names its resident in the Relationship ``resident_attribute``; the
    platform reads it, asks the ledger, logs the decision, and returns the entity or
    raises :class:`ConsentError`.

    Parameters
    ----------
    client : sscity.platform.Client
        The platform operator's client.
    ledger : ConsentLedger
    entity_id, recipient, purpose : str
    at : str, optional
        Time of the request (ISO 8601, UTC); now if not given.
    resident_attribute : str
        The Relationship pointing at the resident (``object`` is the resident's id).
    **get_options
        Passed to ``client.get`` (e.g. ``key_values=True``) for the returned entity.
    """
    stored = client.get(entity_id)
    link = stored.get(resident_attribute)
    resident = link.get("object") if isinstance(link, dict) else link
    if not resident:
        raise ValueError(f"{entity_id} has no '{resident_attribute}' Relationship naming its resident: "
                         "personal data must say whose it is.")
    if not ledger.check_access(resident, recipient, purpose, at, detail=entity_id):
        raise ConsentError(
            f"{recipient} may not read {entity_id} for '{purpose}': {resident} has not switched this "
            f"recipient on (or has switched it off). / {resident} は {recipient} に「{purpose}」の目的での"
            "利用を許可していない（または取り消した）ため、このデータは読めません。")
    return client.get(entity_id, **get_options) if get_options else stored
