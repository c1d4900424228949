"""Row integrity tags: the security state in the database is MAC'd, so an edit made outside the vault is refused.

Who may do what must not be decided by rows an insider can edit with SQL. Every row that a security
decision reads carries a ``tag``: one 16-byte HMAC-SHA256 per protected column, in the order of
``SPECS``, under the row-integrity key ``HKDF-SHA256(KEK, "ifadit/row-integrity/v1\\n" || vault id)``.
Each column's MAC covers the canonical JSON of (vault id, table, the row's key, column, value), so a
value moved to another row, another table or another vault fails, and a failed column is named in the
error. The row's key is its primary key, or its natural unique key where the primary key is a counter
the database assigns at insert (users: name; key versions: handle and version; approvals: request,
approver and time), so a tag can be computed before the row is flushed.

Writes: ``install`` puts the row MAC into a session's ``info``; a ``before_flush`` hook tags every new or
changed protected row of such a session. Reads: a ``load`` hook verifies every protected row the ORM
loads in such a session and raises ``TamperedRow`` (exit 4) naming the table, the row and the columns;
reads through Core call ``RowMac.check`` themselves. A NULL tag is accepted only while the vault is
legacy (upgraded from before 0004 and not yet sealed in by an admin's unlock, ``enforced`` False).

Limit: the key derives from the KEK. In a local vault every user's keyslot unwraps the KEK, so an insider
with their own passphrase can recompute tags; only in service mode is the KEK out of users' reach.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, UOWTransaction

from keyvault import envelope
from keyvault.errors import TamperedRow
from keyvault.schema import (
    AdminActionRow,
    ApprovalRow,
    Base,
    KeyRow,
    KeyVersionRow,
    RestoreRequestRow,
    UserRow,
    VaultRow,
)

INTEGRITY_KEY_INFO = b"ifadit/row-integrity/v1"  # HKDF info (then "\n" and the vault id)
INTEGRITY_MARK = "row-mac/1"  # audit details value recording that a vault's rows are tagged
MARK_BYTES = b'"integrity":"row-mac/1"'  # how the mark reads in an entry's canonical bytes (quotes in text are escaped)
COLUMN_TAG_BYTES = 16  # truncated HMAC-SHA256 per column (128 bits)
SESSION_KEY = "ifadit.row_mac"


@dataclass(frozen=True)
class Spec:
    """What one table's tag covers: the columns naming the row, the protected columns, a label for errors."""

    key: tuple[str, ...]
    columns: tuple[str, ...]
    label: Callable[[Any], str]
    present: tuple[str, ...] = ()  # columns tagged by presence only: AES-GCM already authenticates the blob


SPECS: dict[type[Base], Spec] = {
    VaultRow: Spec(
        ("id",),
        ("require_approval", "approvals_required", "approval_ttl_s", "unlock_delay_ms", "audit_public_key"),
        lambda row: row.id,
    ),
    UserRow: Spec(("name",), ("roles", "disabled", "created_by"), lambda row: row.name),
    KeyRow: Spec(
        ("handle",), ("case_id", "purpose", "state", "expires", "created_by"), lambda row: row.handle
    ),
    KeyVersionRow: Spec(
        ("key_handle", "version"),
        ("state", "material_sealed", "revoked", "destroyed"),
        lambda row: f"{row.key_handle} v{row.version}",
        present=("material_sealed",),
    ),
    RestoreRequestRow: Spec(
        ("handle",),
        ("requester", "case_id", "input_digest", "key_handle", "state", "mode", "files", "closed_by"),
        lambda row: row.handle,
    ),
    ApprovalRow: Spec(
        ("request_handle", "approver", "created"),
        ("expires", "used", "input_digest", "mode"),
        lambda row: f"{row.approver} on {row.request_handle}",
    ),
    AdminActionRow: Spec(
        ("handle",),
        ("kind", "params", "filer", "created", "expires", "state", "decided_by", "decided"),
        lambda row: row.handle,
    ),
}


def _plain(value: Any) -> Any:
    """A column value as JSON: datetimes as UTC ISO text, bytes as hex, the rest as it is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


class RowMac:
    """The row-integrity key of one unlocked vault and whether NULL tags are refused (``enforced``)."""

    __slots__ = ("_key", "enforced", "vault_id")

    def __init__(self, kek: bytes, vault_id: str, *, enforced: bool) -> None:
        self._key = envelope.hkdf_sha256(
            kek, info=INTEGRITY_KEY_INFO + b"\n" + vault_id.encode(), length=envelope.KEY_BYTES
        )
        self.vault_id = vault_id
        self.enforced = enforced

    def __repr__(self) -> str:
        return f"RowMac(vault_id={self.vault_id!r}, enforced={self.enforced})"

    def _column_tags(self, table: str, spec: Spec, values: Mapping[str, Any]) -> list[bytes]:
        key = [_plain(values[name]) for name in spec.key]
        tags = []
        for column in spec.columns:
            value = values[column]
            message: dict[str, Any] = {
                "column": column,
                "key": key,
                "table": table,
                "value": value is not None if column in spec.present else _plain(value),
                "vault": self.vault_id,
            }
            encoded = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            tags.append(envelope.hmac_sha256(self._key, encoded.encode())[:COLUMN_TAG_BYTES])
        return tags

    def tag(self, model: type[Base], values: Mapping[str, Any]) -> bytes:
        """The tag of a row of ``model`` holding ``values`` (every key and protected column by name)."""
        return b"".join(self._column_tags(model.__tablename__, SPECS[model], values))

    def check(self, model: type[Base], values: Mapping[str, Any], stored: bytes | None) -> None:
        """Raise ``TamperedRow`` unless ``stored`` is the tag of these values (NULL passes only when legacy)."""
        spec, table = SPECS[model], model.__tablename__
        where = f"{table} row {spec.label(_Values(values))!r}"
        if stored is None:
            if self.enforced:
                raise TamperedRow(f"{where}: no integrity tag (written outside the vault): refused")
            return
        expected = self._column_tags(table, spec, values)
        stored = bytes(stored)
        got = [stored[i * COLUMN_TAG_BYTES : (i + 1) * COLUMN_TAG_BYTES] for i in range(len(expected))]
        if len(stored) != COLUMN_TAG_BYTES * len(expected):
            got = [b""] * len(expected)
        altered = [
            c for c, e, g in zip(spec.columns, expected, got, strict=True) if not hmac.compare_digest(e, g)
        ]
        if len(altered) == len(spec.columns):
            raise TamperedRow(f"{where}: not written by the vault (no column's tag matches): refused")
        if altered:
            raise TamperedRow(
                f"{where}: security fields altered outside the vault ({', '.join(altered)}): refused"
            )


class _Values:
    """Attribute access over a mapping, so a ``Spec.label`` reads a Core row's values like an ORM row."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values[name]


def _values_of(row: Base) -> dict[str, Any]:
    spec = SPECS[type(row)]
    return {name: getattr(row, name) for name in (*spec.key, *spec.columns)}


def install(session: Session, mac: RowMac) -> Session:
    """Tag this session's writes and verify its ORM reads with ``mac``; returns the session."""
    session.info[SESSION_KEY] = mac
    return session


def mac_of(session: Session) -> RowMac | None:
    """The row MAC installed in ``session``, if any."""
    found = session.info.get(SESSION_KEY)
    return found if isinstance(found, RowMac) else None


def check_row(mac: RowMac, row: Base) -> None:
    """Check one ORM row of a protected table against its tag (``TamperedRow`` when altered)."""
    mac.check(type(row), _values_of(row), row.tag)  # type: ignore[attr-defined]


def verify(session: Session, row: Base) -> None:
    """Check one ORM row against its tag with the session's MAC, when the session has one."""
    mac = mac_of(session)
    if mac is not None and type(row) in SPECS:
        check_row(mac, row)


def tag_all(session: Session, mac: RowMac) -> int:
    """Tag every protected row (sealing in a legacy vault); returns how many rows were tagged."""
    count = 0
    for model in SPECS:
        for row in session.scalars(select(model)):
            row.tag = mac.tag(model, _values_of(row))  # type: ignore[attr-defined]
            count += 1
    session.flush()
    return count


def _on_load(row: Base, context: Any) -> None:
    verify(context.session, row)


def _before_flush(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    mac = mac_of(session)
    if mac is None:
        return
    for row in (*session.new, *session.dirty):
        if type(row) in SPECS and (row in session.new or session.is_modified(row)):
            row.tag = mac.tag(type(row), _values_of(row))


def _on_refresh(row: Base, context: Any, attrs: object) -> None:
    if attrs is None:
        verify(context.session, row)


for _model in SPECS:
    event.listen(_model, "load", _on_load)
    event.listen(_model, "refresh", _on_refresh)
event.listen(Session, "before_flush", _before_flush)
