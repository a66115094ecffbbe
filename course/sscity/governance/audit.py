"""The platform's hash-chained consent ledger as an audit log: what it proves, and what it cannot.

Module 02's :class:`~sscity.platform.consent.ConsentLedger` chains every record to the one
before by SHA-256, so :meth:`~sscity.platform.consent.ConsentLedger.verify` finds any record
edited, deleted or reordered *on its own*. But the hashes are public arithmetic: whoever can
write the file can also **recompute the chain** from the first changed record to the end,
and the rewritten ledger verifies again (:func:`rewrite_chain` does exactly that). A hash
chain is tamper-evident only against someone who cannot rewrite the rest of it.

The fix is to fix the head somewhere the rewriter cannot reach (:func:`anchor_head`):

- **publish or store the head hash apart** (an append-only anchors file on another system,
  a printed minute of the ethics committee, a public timestamping or transparency service):
  a rewritten ledger no longer ends in, or passes through, the anchored hash;
- **sign the head** with a key held apart (here HMAC-SHA256, RFC 2104, so the anchors file
  itself cannot be edited to match): the verifier needs the key, and so does a forger. A
  shared HMAC key lets its holders forge as well; a public-key signature (e.g. Ed25519)
  would let anyone verify without being able to sign.

An anchor fixes the ledger only up to its length: records appended after the last anchor
are unprotected until the next anchor. Anchor often (e.g. daily, or at every committee
meeting).

Example
-------
>>> from sscity.platform.consent import ConsentLedger
>>> ledger = ConsentLedger()
>>> _ = ledger.grant("r1", "bus", "booking", at="2024-05-01T09:00:00Z")
>>> _ = ledger.check_access("r1", "bus", "booking", at="2024-05-01T10:00:00Z")
>>> anchor = anchor_head(ledger, at="2024-05-01T12:00:00Z")
>>> forged = rewrite_chain(ledger, 1, action="access-denied")
>>> forged.verify()                   # the chain alone cannot tell
[]
>>> check_anchor(forged, anchor).ok   # the anchor can
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

# The ledger's own hashing and time parsing: a rewrite must compute hashes exactly as the
# ledger does, or the lesson would show a forgery the real ledger rejects.
from sscity.platform.consent import GENESIS, ConsentLedger, ConsentRecord, _digest, _utc

__all__ = [
    "Anchor",
    "AnchorCheck",
    "anchor_head",
    "append_anchor",
    "check_anchor",
    "check_anchors",
    "head_hash",
    "load_anchors",
    "rewrite_chain",
    "sign",
]

MIN_KEY_BYTES = 16


def _ledger(ledger) -> ConsentLedger:
    if not isinstance(ledger, ConsentLedger):
        raise ValueError(f"Give a sscity.platform.consent.ConsentLedger; got {type(ledger).__name__}. "
                         f"/ sscity.platform.consent.ConsentLedger を渡してください。")
    return ledger


def head_hash(ledger: ConsentLedger) -> str:
    """The hash of the last record (``GENESIS``, 64 zeros, for an empty ledger)."""
    records = _ledger(ledger).records
    return records[-1].hash if records else GENESIS


def rewrite_chain(ledger: ConsentLedger, position: int, *, drop: bool = False, **changes) -> ConsentLedger:
    """A forged copy of ``ledger``: record ``position`` changed (or dropped), the chain recomputed.

    Every record from ``position`` on gets a new ``seq``, ``prev_hash`` and ``hash``, computed
    exactly as the ledger computes them, so the forgery passes ``verify()``. This is what an
    insider with write access can do; it is here to show why the head must be anchored.

    Parameters
    ----------
    ledger : ConsentLedger
        Left unchanged.
    position : int
        The first record to change (0 = the oldest).
    drop : bool, default False
        Delete the record instead of changing it.
    **changes
        New values of record fields (``at``, ``resident``, ``recipient``, ``purpose``,
        ``action``, ``detail``).

    Returns
    -------
    ConsentLedger
    """
    records = list(_ledger(ledger).records)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(records):
        raise ValueError(f"position must be a record number 0...{len(records) - 1}; got {position!r}. "
                         f"/ position は 0〜{len(records) - 1} のレコード番号にしてください。")
    editable = {"at", "resident", "recipient", "purpose", "action", "detail"}
    unknown = sorted(set(changes) - editable)
    if unknown:
        raise ValueError(f"Cannot set {unknown}: editable fields are {sorted(editable)} (the chain fields "
                         f"are recomputed). / {unknown} は変更できません"
                         f"（変更できるのは {sorted(editable)}）。")
    if drop and changes:
        raise ValueError("Either drop the record or change it, not both. "
                         "/ 削除か変更のどちらかにしてください。")
    if drop:
        del records[position]
    else:
        records[position] = replace(records[position], **changes)
    rebuilt = records[:position]
    previous = rebuilt[-1].hash if rebuilt else GENESIS
    for seq, record in enumerate(records[position:], start=position):
        payload = {**record.payload(), "seq": seq, "prev_hash": previous}
        record = ConsentRecord(**payload, hash=_digest(payload))
        rebuilt.append(record)
        previous = record.hash
    return ConsentLedger(rebuilt)


def _key(key) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key must be at least {MIN_KEY_BYTES} random bytes (e.g. secrets.token_bytes(32)), "
                         f"kept apart from the ledger. / key は台帳とは別に保管する "
                         f"{MIN_KEY_BYTES} バイト以上の乱数にしてください（例: secrets.token_bytes(32)）。")
    return bytes(key)


def sign(message: bytes | str, key: bytes | str) -> str:
    """HMAC-SHA256 of ``message`` under ``key`` (RFC 2104), as hex. No minimum key length here."""
    message = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """The ledger's head fixed at a moment: its length, its last hash, when, and an optional MAC."""

    length: int
    head: str
    at: str
    signature: str = ""

    def message(self) -> str:
        """What the signature covers: length, head and time, in a fixed order."""
        return f"sscity-ledger-anchor:{self.length}:{self.head}:{self.at}"


def anchor_head(ledger: ConsentLedger, at=None, key=None) -> Anchor:
    """Anchor the ledger's current head; signed with HMAC-SHA256 if ``key`` is given.

    Refuses a ledger that does not verify: anchoring a broken chain would bless it.
    """
    ledger = _ledger(ledger)
    broken = ledger.verify()
    if broken:
        raise ValueError(f"The ledger fails its own check at records {broken}; repair it before anchoring. "
                         f"/ 台帳のレコード {broken} がハッシュ検査に失敗しています。"
                         "固定する前に直してください。")
    anchor = Anchor(len(ledger), head_hash(ledger), _utc(at))
    key = _key(key)
    return replace(anchor, signature=sign(anchor.message(), key)) if key else anchor


@dataclass
class AnchorCheck:
    """Result of :func:`check_anchor`: ``ok`` and the bilingual reasons when not."""

    ok: bool
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def check_anchor(ledger: ConsentLedger, anchor: Anchor, key=None) -> AnchorCheck:
    """Check a ledger against an anchor kept apart (and its signature, if ``key`` is given).

    The ledger passes if its chain verifies, it is at least as long as the anchor, and its
    record ``anchor.length - 1`` has the anchored hash (records appended later are allowed).
    With ``key`` the anchor's HMAC must match too; an unsigned anchor then fails.
    """
    ledger = _ledger(ledger)
    if not isinstance(anchor, Anchor):
        raise ValueError("anchor must be an Anchor (from anchor_head or load_anchors). "
                         "/ anchor には anchor_head か load_anchors の Anchor を渡してください。")
    problems = []
    key = _key(key)
    if key is not None and not hmac.compare_digest(anchor.signature, sign(anchor.message(), key)):
        problems.append("The anchor's signature does not match: the anchor was altered, or signed with "
                        "another key. / 固定値（アンカー）の署名が一致しません。アンカーが改ざんされたか、"
                        "別の鍵で署名されています。")
    broken = ledger.verify()
    if broken:
        problems.append(f"The chain itself is broken at records {broken}. "
                        f"/ ハッシュチェーン自体がレコード {broken} で壊れています。")
    if len(ledger) < anchor.length:
        problems.append(f"The ledger has {len(ledger)} records, fewer than the {anchor.length} anchored "
                        f"at {anchor.at}: records were removed. / 台帳のレコード数 {len(ledger)} が "
                        f"{anchor.at} に固定した {anchor.length} より少なく、レコードが削除されています。")
    else:
        actual = ledger.records[anchor.length - 1].hash if anchor.length else GENESIS
        if actual != anchor.head:
            problems.append(f"Record {anchor.length - 1} hashes to {actual[:12]}..., not the "
                            f"{anchor.head[:12]}... anchored at {anchor.at}: the history up to it was "
                            f"rewritten. / レコード {anchor.length - 1} のハッシュが {anchor.at} に固定した"
                            f"値と一致しません。それまでの履歴が書き換えられています。")
    return AnchorCheck(not problems, problems)


def check_anchors(ledger: ConsentLedger, anchors, key=None) -> pd.DataFrame:
    """:func:`check_anchor` for every anchor: one row each (``length``, ``at``, ``ok``, ``problems``)."""
    rows = []
    for anchor in anchors:
        result = check_anchor(ledger, anchor, key)
        rows.append({"length": anchor.length, "at": anchor.at, "head": anchor.head[:12] + "...",
                     "ok": result.ok, "problems": " | ".join(result.problems)})
    return pd.DataFrame(rows, columns=["length", "at", "head", "ok", "problems"])


def append_anchor(path, anchor: Anchor) -> Path:
    """Append ``anchor`` to a JSON-lines anchors file (kept on another system than the ledger)."""
    if not isinstance(anchor, Anchor):
        raise ValueError("anchor must be an Anchor. / anchor には Anchor を渡してください。")
    path = Path(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(anchor), ensure_ascii=False) + "\n")
    return path


def load_anchors(path) -> list[Anchor]:
    """Read the anchors written by :func:`append_anchor`, oldest first."""
    anchors = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor(**json.loads(line)))
        except (TypeError, ValueError):
            raise ValueError(f"Line {number} of {path} is not an anchor. "
                             f"/ {path} の {number} 行目はアンカーの形式ではありません。") from None
    return anchors
