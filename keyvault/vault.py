"""The vault facade: create a vault, unlock it as a user, and run every action with its audit entry.

``Vault.init`` creates the schema, the vault KEK, the first admin's keyslot and the audit signing key.
``open_vault`` unlocks: Argon2id(passphrase) unwraps the KEK from the user's keyslot; an unknown user
and a wrong passphrase give the same ``AuthenticationError`` and the failed attempt is audited.

``with vault.action("key.issue", role="admin") as act:`` runs one transaction that holds the action's
writes and its audit entry, so there is never an action without its entry. A refused action (missing
role, wrong key state, unknown handle) rolls back and is audited as outcome "refused" in its own
transaction. Closing the vault writes a signed tree head when anything was appended, and publishes
it as a C2SP checkpoint in the checkpoint file outside the database (``checkpoints_path``), which
every later tree head must extend.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from platformdirs import user_data_dir
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from keyvault import checkpoint as checkpoints
from keyvault import db, integrity, ledger
from keyvault.audit import thin_tree_heads, write_bundle
from keyvault.digests import digest_key, keyed_digest
from keyvault.envelope import (
    KdfParams,
    derive_wrapping_key,
    generate_signing_key,
    random_key,
    seal,
    sign,
    unseal,
    verify_signature,
)
from keyvault.errors import (
    ApprovalPending,
    AuthenticationError,
    IntegrityError,
    KeyStateError,
    NotFound,
    PermissionDenied,
    SealedDataError,
    TamperedRow,
    VaultError,
    VaultSchemaError,
)
from keyvault.excerpt import AuditFilter, bracketing_heads, excerpt_lines
from keyvault.records import Policy, UserInfo, split_roles
from keyvault.schema import (
    DEFAULT_APPROVAL_TTL_S,
    DEFAULT_UNLOCK_DELAY_MS,
    ROLES,
    KeyslotRow,
    ServiceSealRow,
    UserRow,
    VaultRow,
)

Clock = Callable[[], datetime]
# How a new vault stores its first admin's credential: (session, vault id, admin row, KEK, passphrase, kdf).
Enroll = Callable[[Session, str, UserRow, bytes, bytes, KdfParams], None]
REFUSALS = (PermissionDenied, KeyStateError, NotFound, ApprovalPending, TamperedRow)
AUTH_FAILED = "authentication failed: unknown user or wrong passphrase"
MAX_UNLOCK_DELAY = timedelta(minutes=1)
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")  # what `users add` accepts
_USER_ROLES = select(UserRow.name, UserRow.roles, UserRow.disabled, UserRow.created_by, UserRow.tag).where(
    UserRow.name == bindparam("name")
)
DETACHED_DOMAIN = b"ifadit-detached/1\n"  # prefix of detached signatures: never a tree head's bytes
CHECKPOINTS_ENV = "IFADIT_CHECKPOINTS"  # checkpoint file, or a folder holding <vault id>.checkpoints


def checkpoints_path(url: str, vault_id: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where a vault's checkpoints are published: ``explicit``, else ``IFADIT_CHECKPOINTS``, else beside the DB.

    A folder (existing, or named with a trailing slash) holds ``<vault id>.checkpoints``. Without a
    setting, a SQLite vault publishes to ``<database file>.checkpoints`` and any other back end to
    ``checkpoints/<vault id>.checkpoints`` in the user data folder.
    """
    chosen = os.fspath(explicit) if explicit is not None else os.environ.get(CHECKPOINTS_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        return path / f"{vault_id}.checkpoints" if path.is_dir() or chosen.endswith(os.sep) else path
    database = db.sqlite_path(url)
    if database is not None:
        return database.with_name(database.name + ".checkpoints")
    return Path(user_data_dir("ifadit")) / "checkpoints" / f"{vault_id}.checkpoints"


def check_unlock_delay(delay: timedelta) -> None:
    """Refuse an unlock delay outside 0..MAX_UNLOCK_DELAY (a longer one only locks users out)."""
    if not timedelta(0) <= delay <= MAX_UNLOCK_DELAY:
        raise ValueError(f"unlock delay must be between 0 and {MAX_UNLOCK_DELAY.total_seconds():g} seconds")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


def aad(kind: str, **fields: str | int) -> bytes:
    """Associated data for a sealed blob: canonical JSON naming what the blob is and where it belongs."""
    return json.dumps({"kind": kind, **fields}, sort_keys=True, separators=(",", ":")).encode()


def detached_bytes(purpose: str, data: bytes) -> bytes:
    """What a detached signature covers: the domain, the purpose (e.g. "manifest") and the data."""
    if not purpose or "\n" in purpose:
        raise ValueError("a detached-signature purpose is a non-empty single line")
    return DETACHED_DOMAIN + purpose.encode() + b"\n" + data


def verify_detached(public_key: bytes, purpose: str, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the vault's ``sign_detached(purpose, data)``; never raises on bad input."""
    return verify_signature(public_key, signature, detached_bytes(purpose, data))


class Secret:
    """Bytes that never show in a repr, str or traceback; ``reveal()`` hands them to crypto code only."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The secret bytes (pass them straight to crypto code; never print or store them)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


@dataclass
class Action:
    """One audited action in progress: its session and the fields its audit entry will carry."""

    name: str
    actor: str
    session: Session
    role: str = ""
    key_handle: str | None = None
    key_version: int | None = None
    case_id: str | None = None
    reason: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def join_roles(roles: tuple[str, ...] | list[str] | set[str]) -> str:
    """Validate roles and store them as a sorted comma-separated string."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}")
    if not roles:
        raise ValueError(f"a user needs at least one role ({', '.join(ROLES)})")
    return ",".join(sorted(set(roles)))


def new_keyslot(
    vault_id: str, user_id: int, user_name: str, kek: bytes, passphrase: bytes, kdf: KdfParams, now: datetime
) -> KeyslotRow:
    """Wrap the KEK under Argon2id(passphrase) for one user."""
    wrapping = derive_wrapping_key(passphrase, kdf)
    wrapped = seal(wrapping, kek, aad("keyslot", vault=vault_id, user=user_name))
    return KeyslotRow(user_id=user_id, kdf=kdf.to_dict(), wrapped_kek=wrapped, created=now)


class Vault:
    """An unlocked vault: the acting user, the KEK in memory, and audited actions. Use as a context manager."""

    # An action that appends re-checks the newest signed head's root over the stored leaves even when
    # ``verified_heads`` says it held: set by the service, whose verified heads outlive a request, so
    # history rewritten under a head it checked earlier is refused before the action commits anything.
    recheck_head_before_append = False

    def __init__(
        self,
        *,
        url: str,
        engine: Engine,
        vault_id: str,
        user: UserInfo,
        kek: bytes,
        signing_key: bytes,
        public_key: bytes,
        clock: Clock,
        checkpoints: Path | None = None,
        row_mac: integrity.RowMac | None = None,
        verified_heads: set[ledger.SignedHead] | None = None,
    ) -> None:
        self.url = url
        self.engine = engine
        self.id = vault_id
        self.user = user
        self.public_key = public_key
        self.clock = clock
        self.checkpoints = checkpoints or checkpoints_path(url, vault_id)  # the published checkpoint file
        self._kek = Secret(kek)
        self._signing_key = Secret(signing_key)
        self._appended = False
        self._row_mac = row_mac or integrity.RowMac(kek, vault_id, enforced=True)
        self._verified_heads = set() if verified_heads is None else verified_heads  # heads whose root held
        self._frontier: ledger.Frontier | None = None  # newest entry the last tail check found sound

    def __repr__(self) -> str:
        return f"Vault(id={self.id!r}, url={db.display_url(self.url)!r}, user={self.user.name!r})"

    # ------------------------------------------------------------------ create and unlock

    @classmethod
    def init(
        cls,
        url: str | None,
        admin_name: str,
        passphrase: bytes,
        *,
        kdf: KdfParams | None = None,
        clock: Clock = utc_now,
        unlock_delay: timedelta = timedelta(milliseconds=DEFAULT_UNLOCK_DELAY_MS),
        checkpoints: str | os.PathLike[str] | None = None,
        enroll: Enroll | None = None,
    ) -> Vault:
        """Create a vault at ``url`` with its first admin; refuses a database that already holds one.

        ``kdf`` sets the admin keyslot's Argon2id cost (default: ``KdfParams`` defaults); ``unlock_delay``
        the pause after a failed unlock (tests pass zero); ``checkpoints`` the checkpoint file (see
        ``checkpoints_path``), which must not hold another vault's checkpoints. ``enroll`` stores the
        admin's credential in the init transaction instead of a keyslot wrapping the KEK (service mode,
        ``keyvault.service.setup``).
        """
        check_unlock_delay(unlock_delay)
        url = db.resolve_url(url)
        vault_id = secrets.token_hex(16)
        published = _fresh_checkpoint_file(url, vault_id, checkpoints)
        engine = db.make_engine(url, create=True)
        db.upgrade(engine)
        db.check_revision(engine, url)
        kdf = kdf or KdfParams.generate()
        kek = random_key()
        signing_key, public_key = generate_signing_key()
        now = clock()
        mac = integrity.RowMac(kek, vault_id, enforced=True)
        with integrity.install(Session(engine), mac) as session, session.begin():
            if session.scalar(select(VaultRow.id)) is not None:
                raise VaultError(f"a vault already exists at {db.display_url(url)}", hint="open it instead")
            session.add(
                VaultRow(
                    id=vault_id,
                    created=now,
                    audit_public_key=public_key,
                    audit_signing_key_sealed=seal(kek, signing_key, aad("audit-signing-key", vault=vault_id)),
                    require_approval=True,
                    approval_ttl_s=DEFAULT_APPROVAL_TTL_S,
                    approvals_required=1,
                    unlock_delay_ms=round(unlock_delay.total_seconds() * 1000),
                )
            )
            user = UserRow(name=admin_name, roles="admin", disabled=False, created=now)
            session.add(user)
            session.flush()
            if enroll is None:
                session.add(new_keyslot(vault_id, user.id, admin_name, kek, passphrase, kdf, now))
            else:
                enroll(session, vault_id, user, kek, passphrase, kdf)
            ledger.append(
                session,
                now=now,
                actor=admin_name,
                role="admin",
                action="vault.init",
                outcome="ok",
                details={"vault": vault_id, "integrity": integrity.INTEGRITY_MARK},
            )
            info = UserInfo.from_row(user)
        vault = _Opened(vault_id, info, kek, signing_key, public_key).as_vault(
            cls, url, engine, clock, published
        )
        vault._appended = True
        return vault

    # ------------------------------------------------------------------ transactions and audit

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One read-write transaction (SQLite: BEGIN IMMEDIATE); commits on success, rolls back on error."""
        with self._session() as session, session.begin():
            yield session

    def _session(self) -> Session:
        """A session whose protected rows are tagged on write and verified on load (``keyvault.integrity``)."""
        return integrity.install(Session(self.engine, expire_on_commit=False), self._row_mac)

    @contextmanager
    def action(
        self,
        name: str,
        *,
        role: str | tuple[str, ...],
        key: str | None = None,
        key_version: int | None = None,
        case: str | None = None,
        reason: str | None = None,
        digests: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        record: bool = True,
    ) -> Iterator[Action]:
        """Run an action and its audit entry in one transaction; audit a refusal or failure on its own.

        ``role`` names the role (or any of several roles) the acting user must hold. ``record=False``
        is for reads (list, show): no entry when they succeed, but a refusal is still audited.
        """
        roles = (role,) if isinstance(role, str) else role
        with self._session() as session:
            act = Action(
                name=name,
                actor=self.user.name,
                session=session,
                role="|".join(roles),
                key_handle=key,
                key_version=key_version,
                case_id=case,
                reason=reason,
                digests=dict(digests or {}),
                details=dict(details or {}),
            )
            try:
                with session.begin():
                    verified = set() if record and self.recheck_head_before_append else self._verified_heads
                    self._frontier = ledger.check_tail(
                        session, self.id, self.public_key, verified, self._frontier
                    )
                    act.role = self._authorize(session, roles)
                    yield act
                    if record:
                        self._append(session, act, "ok")
            except IntegrityError as exc:
                if not isinstance(exc, TamperedRow):
                    raise  # the log itself does not verify: append nothing to it
                self._record_unsuccessful(act, "refused", str(exc))
                raise
            except VaultError as exc:
                self._record_unsuccessful(act, "refused" if isinstance(exc, REFUSALS) else "failed", str(exc))
                raise
            except Exception as exc:
                try:
                    self._record_unsuccessful(act, "failed", type(exc).__name__)
                except Exception:
                    exc.add_note("the failure could not be written to the audit log")
                raise
        self._appended = self._appended or record

    def _authorize(self, session: Session, roles: tuple[str, ...]) -> str:
        row = session.connection().execute(_USER_ROLES, {"name": self.user.name}).first()
        if row is not None:
            self._row_mac.check(UserRow, dict(row._mapping), row.tag)
        if row is None or row.disabled:
            raise PermissionDenied(f"user {self.user.name} is disabled or was removed")
        held = split_roles(row.roles)
        for wanted in roles:
            if wanted in held:
                return wanted
        raise PermissionDenied(
            f"user {self.user.name} lacks the role {' or '.join(roles)}",
            hint=f"holds: {', '.join(held)}; ask an admin for an account with that role",
        )

    def _append(self, session: Session, act: Action, outcome: str, error: str | None = None) -> None:
        details = dict(act.details)
        if error is not None:
            details["error"] = error
        ledger.append(
            session,
            now=self.clock(),
            actor=act.actor,
            role=act.role,
            action=act.name,
            outcome=outcome,
            key_handle=act.key_handle,
            key_version=act.key_version,
            case_id=act.case_id,
            reason=act.reason,
            digests=act.digests,
            details=details,
        )

    def seal_in(self) -> None:
        """Tag every row of a legacy vault (upgraded from before 0004) on an admin's unlock; audited.

        From then on a row with a NULL tag is refused. Rows edited before this moment are tagged as they
        are: ``docs/security.md`` asks the admin to review users, policy and keys right after upgrading.
        """
        if self._row_mac.enforced or "admin" not in self.user.roles:
            return
        with self.transaction() as session:
            ledger.lock(session)
            count = integrity.tag_all(session, self._row_mac)
            ledger.append(
                session,
                now=self.clock(),
                actor=self.user.name,
                role="admin",
                action="vault.seal-in",
                outcome="ok",
                details={"integrity": integrity.INTEGRITY_MARK, "rows": count},
            )
        self._row_mac.enforced = True
        self._appended = True

    def refuse_unlock(self, error: str) -> None:
        """Audit a refused unlock (its own transaction) and close this vault; the caller raises."""
        with self.transaction() as session:
            ledger.append(
                session,
                now=self.clock(),
                actor=self.user.name,
                role=None,
                action="vault.unlock",
                outcome="refused",
                details={"error": error},
            )
        self._appended = True
        self.close()

    def _record_unsuccessful(self, act: Action, outcome: str, error: str) -> None:
        with self.transaction() as session:
            act.session = session
            self._append(session, act, outcome, error)
        self._appended = True

    # ------------------------------------------------------------------ KEK use (package-internal)

    def seal_secret(self, plaintext: bytes, associated: bytes) -> bytes:
        """Seal bytes under the vault KEK (key material, the audit signing key)."""
        return seal(self._kek.reveal(), plaintext, associated)

    def unseal_secret(self, blob: bytes, associated: bytes) -> bytes:
        """Open a blob sealed under the KEK; ``SealedDataError`` (opaque) when it was altered or moved."""
        return unseal(self._kek.reveal(), blob, associated)

    def keyed_digest(self, sha256_hex: str) -> str:
        """``hmac-sha256:<hex>``: the keyed digest audit entries record for content with that SHA-256.

        Keyed under this vault's digest key (HKDF of the KEK, never stored; ``keyvault.digests``), so a bundle
        reader cannot confirm a guessed original, while a vault user can recompute it for a file they hold.
        """
        return keyed_digest(digest_key(self._kek.reveal(), self.id), sha256_hex)

    def wrap_for_user(
        self, session: Session, user: UserRow, passphrase: bytes, kdf: KdfParams | None
    ) -> None:
        """Give ``user`` a keyslot holding the KEK under their passphrase."""
        session.add(
            new_keyslot(
                self.id,
                user.id,
                user.name,
                self._kek.reveal(),
                passphrase,
                kdf or KdfParams.generate(),
                self.clock(),
            )
        )

    def sign_detached(self, purpose: str, data: bytes) -> bytes:
        """Ed25519 signature of ``data`` (e.g. an output manifest) by the audit key; check with ``verify_detached``.

        The signed bytes start with ``DETACHED_DOMAIN`` and ``purpose``, so no detached signature can pass
        for a tree head's or for another purpose's.
        """
        return sign(self._signing_key.reveal(), detached_bytes(purpose, data))

    # ------------------------------------------------------------------ policy, checkpoints, export, close

    def policy(self, session: Session | None = None) -> Policy:
        """The current restore policy (read inside ``session`` when given, e.g. an action's own)."""
        if session is None:
            with self._session() as own:
                return self.policy(own)
        return Policy.from_row(session.scalars(select(VaultRow)).one())

    def checkpoint(self) -> ledger.SignedHead:
        """Sign and store a tree head over every entry appended so far, and publish it as a checkpoint.

        ``IntegrityError`` (exit 4) when the log no longer extends the newest signed head, or the newest
        checkpoint in the checkpoint file: rewritten or truncated history is never signed over. The
        checkpoint is appended inside the head's transaction (under the append lock), so the file
        keeps the database's order; a failed append rolls the head back.
        """
        self._appended = False
        with self.transaction() as session:
            ledger.lock(session)
            ledger.check_tail(session, self.id, self.public_key, self._verified_heads)  # the whole tail
            head = ledger.checkpoint(
                session,
                signing_key=self._signing_key.reveal(),
                public_key=self.public_key,
                vault_id=self.id,
                now=self.clock(),
                published=self._published(),
            )
            try:
                checkpoints.append(self.checkpoints, self.checkpoint_note(head))
            except OSError as exc:
                raise VaultError(
                    f"cannot publish the checkpoint to {self.checkpoints} ({exc.strerror}): "
                    "refusing to sign a tree head that is not published",
                    hint="set IFADIT_CHECKPOINTS to a writable file or folder",
                ) from None
            return head

    def checkpoint_note(self, head: ledger.SignedHead) -> str:
        """The C2SP checkpoint note of a signed tree head (Ed25519 is deterministic: as it was published)."""
        return checkpoints.sign_checkpoint(
            self._signing_key.reveal(), self.id, head.size, bytes.fromhex(head.root)
        )

    def checkpoint_verifier(self) -> str:
        """The verifier key of this vault's checkpoints (``ifadit.vault/<id>+<key ID>+<base64 key>``)."""
        return checkpoints.log_verifier(self.id, self.public_key).encode()

    def _published(self) -> tuple[int, bytes, str] | None:
        """(size, root, file) of the newest checkpoint in the checkpoint file, after checking its signature."""
        latest = checkpoints.read_latest(self.checkpoints)
        if latest is None:
            return None
        try:
            signed = checkpoints.open_checkpoint(latest, checkpoints.log_verifier(self.id, self.public_key))
        except VaultError as exc:
            raise IntegrityError(
                f"the newest checkpoint in {self.checkpoints} does not verify: {exc.args[0]}",
                hint="the checkpoint file was edited, or belongs to another vault",
            ) from None
        return signed.size, signed.checkpoint.root, str(self.checkpoints)

    def export_audit(self, path: str | os.PathLike[str], where: AuditFilter | None = None) -> int:
        """Write the whole audit log and its signed tree heads to a bundle (atomically); return the entry count.

        Needs the auditor or admin role. The export is itself audited and followed by a fresh signed
        tree head, so the bundle's newest head covers every entry in it. Of the stored heads (one per
        command) it keeps one per 1,000 entries and the newest, which keeps offline verification fast.
        With ``where`` it writes an excerpt (``keyvault.excerpt``: the selected entries in full, the
        others as hashes, the heads around each shown entry) and returns how many entries it shows;
        the export's own entry carries the filter's case. When the log no longer matches its newest
        signed head, the file is written with every head (so `audit verify` locates the change) and
        ``IntegrityError`` is raised. So does a log whose tail fails the fail-closed check (``Vault.action``):
        the export is then the one thing the vault still does, unaudited, for auditors and admins only.
        """
        details: dict[str, Any] = {"file": Path(path).name}
        if where is not None:
            details["filter"] = where.to_dict()
        case = where.case if where is not None else None
        try:
            with self.action("audit.export", role=("auditor", "admin"), case=case, details=details):
                pass
            self.checkpoint()
        except TamperedRow:
            raise
        except IntegrityError as exc:  # the log fails its checks: export it as it is, to locate the change
            with self.transaction() as session:  # every head, so `audit verify` can locate the change
                self._authorize(session, ("auditor", "admin"))
                self._write_export(path, session, where, every_head=True)
            raise IntegrityError(f"{exc.args[0]}; the bundle was written anyway", hint=exc.hint) from None
        with self.transaction() as session:
            return self._write_export(path, session, where, every_head=False)

    def _write_export(
        self, path: str | os.PathLike[str], session: Session, where: AuditFilter | None, *, every_head: bool
    ) -> int:
        blobs, heads = ledger.entries_bytes(session), ledger.tree_heads(session, self.id)
        if where is None:
            kept = heads if every_head else thin_tree_heads(heads)
            return write_bundle(path, self.id, self.public_key, blobs, kept)
        shown: list[int] = []
        lines = list(excerpt_lines(blobs, where, shown))
        kept = heads if every_head else bracketing_heads(heads, shown)
        write_bundle(path, self.id, self.public_key, lines, kept, excerpt_filter=where.to_dict())
        return len(shown)

    def close(self) -> None:
        """Write a signed tree head if this session appended anything, then release the database."""
        try:
            if self._appended:
                self.checkpoint()
        finally:
            self.engine.dispose()

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _refuse_existing_vault(url: str) -> None:
    """Raise the "a vault already exists" error when ``url`` already holds a vault (checked before the file)."""
    try:
        engine = db.make_engine(url)
    except VaultError:
        return
    try:
        with Session(engine) as session:
            existing = session.scalar(select(VaultRow.id))
    except SQLAlchemyError:
        existing = None
    finally:
        engine.dispose()
    if existing is not None:
        raise VaultError(f"a vault already exists at {db.display_url(url)}", hint="open it instead")


V = TypeVar("V", bound=Vault)


@dataclass(frozen=True)
class _Opened:
    """A vault just created or unlocked: its id, the acting user and the secrets this process now holds."""

    vault_id: str
    user: UserInfo
    kek: bytes = field(repr=False)
    signing_key: bytes = field(repr=False)
    public_key: bytes = field(repr=False)

    def as_vault(
        self,
        cls: type[V],
        url: str,
        engine: Engine,
        clock: Clock,
        checkpoints: Path,
        row_mac: integrity.RowMac | None = None,
    ) -> V:
        """The `Vault` (or subclass `cls`) these secrets open, on `engine`."""
        return cls(
            url=url,
            engine=engine,
            vault_id=self.vault_id,
            user=self.user,
            kek=self.kek,
            signing_key=self.signing_key,
            public_key=self.public_key,
            clock=clock,
            checkpoints=checkpoints,
            row_mac=row_mac,
        )


def _fresh_checkpoint_file(url: str, vault_id: str, checkpoints: str | os.PathLike[str] | None) -> Path:
    """The checkpoint file a new vault will publish to; refused when it already holds another vault's."""
    published = checkpoints_path(url, vault_id, checkpoints)
    if published.is_file() and published.stat().st_size:
        _refuse_existing_vault(url)
        raise VaultError(
            f"the checkpoint file {published} already holds another vault's checkpoints",
            hint="move it away, or set IFADIT_CHECKPOINTS to a new file or a folder",
        )
    return published


def _vault_row_to_unlock(session: Session, url: str, expected_vault_id: str | None) -> VaultRow:
    """The vault row a passphrase may unlock: it exists, is the one expected, and is not in service mode."""
    vault_row = session.scalars(select(VaultRow)).one_or_none()
    if vault_row is None:
        raise db.VaultNotFound(f"no vault at {db.display_url(url)}", hint="run `ifadit vault init`")
    if expected_vault_id is not None and vault_row.id != expected_vault_id:
        raise IntegrityError(f"{db.display_url(url)} holds vault {vault_row.id}, not {expected_vault_id}")
    if session.get(ServiceSealRow, vault_row.id) is not None:
        raise PermissionDenied(
            f"vault {vault_row.id} runs in service mode: no passphrase opens its database",
            hint="use the vault service: --vault https://HOST:PORT (or IFADIT_VAULT)",
        )
    return vault_row


def admit(
    session: Session, kek: bytes, vault_row: VaultRow, user_row: UserRow
) -> tuple[integrity.RowMac, TamperedRow | None]:
    """The row MAC of an unlock, and the refusal when the vault row or the user's own row fails its tag.

    A vault row without a tag is legacy (upgraded from before 0004, not yet sealed in) unless the log
    records that its rows were tagged (``vault.init`` or ``vault.seal-in``): then the tags were stripped in
    the database, and every NULL tag is refused. The log is scanned only in that rare case.
    """
    enforced = vault_row.tag is not None or ledger.mentions(session, integrity.MARK_BYTES)
    mac = integrity.RowMac(kek, vault_row.id, enforced=enforced)
    try:
        integrity.check_row(mac, vault_row)
        integrity.check_row(mac, user_row)
    except TamperedRow as exc:
        return mac, exc
    return mac, None


def open_vault(
    url: str | None,
    user: str,
    passphrase: bytes,
    *,
    clock: Clock = utc_now,
    expected_vault_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    checkpoints: str | os.PathLike[str] | None = None,
) -> Vault:
    """Unlock the vault at ``url`` as ``user``; one ``AuthenticationError`` for unknown user or wrong passphrase.

    A failed unlock is audited, then waits the policy's unlock delay before raising (``sleep`` is
    injectable for tests). ``checkpoints`` names the checkpoint file (see ``checkpoints_path``).
    """
    url = db.resolve_url(url)
    engine = db.make_engine(url)
    db.check_revision(engine, url)
    with Session(engine) as session:
        vault_row = _vault_row_to_unlock(session, url, expected_vault_id)
        valid_name = USER_NAME.fullmatch(user) is not None  # anything else cannot exist (nor be stored)
        row = session.scalar(select(UserRow).where(UserRow.name == user)) if valid_name else None
        slot = session.scalar(select(KeyslotRow).where(KeyslotRow.user_id == row.id)) if row else None
        kek = _unwrap(vault_row.id, user, slot, passphrase, session)
        vault_id, public_key, sealed_signing = (
            vault_row.id,
            vault_row.audit_public_key,
            vault_row.audit_signing_key_sealed,
        )
        info = UserInfo.from_row(row) if row else None
        delay = Policy.from_row(vault_row).unlock_delay
        mac, refusal = admit(session, kek, vault_row, row) if kek is not None and row else (None, None)
    if kek is None or info is None:
        with Session(engine) as session, session.begin():
            ledger.append(
                session,
                now=clock(),
                actor=user if valid_name else None,
                role=None,
                action="vault.unlock",
                outcome="failed",
                details={"error": AUTH_FAILED},
            )
        engine.dispose()
        sleep(delay.total_seconds())
        raise AuthenticationError(AUTH_FAILED)
    signing_key = unseal(kek, sealed_signing, aad("audit-signing-key", vault=vault_id))
    published = checkpoints_path(url, vault_id, checkpoints)
    vault = _Opened(vault_id, info, kek, signing_key, public_key).as_vault(
        Vault, url, engine, clock, published, mac
    )
    if refusal is not None:
        vault.refuse_unlock(str(refusal))
        raise refusal
    if info.disabled:
        vault.refuse_unlock(f"user {user} is disabled")
        raise PermissionDenied(f"user {user} is disabled", hint="an admin can add a new user")
    vault.seal_in()
    return vault


def _unwrap(
    vault_id: str, user: str, slot: KeyslotRow | None, passphrase: bytes, session: Session
) -> bytes | None:
    """The KEK, or None; an unknown user costs the same Argon2id work as a wrong passphrase."""
    if slot is None:
        reference = session.scalars(select(KeyslotRow).limit(1)).first()
        params = KdfParams.from_dict(reference.kdf) if reference else KdfParams.generate()
        derive_wrapping_key(
            passphrase, KdfParams.generate(params.memory_cost, params.iterations, params.lanes)
        )
        return None
    wrapping = derive_wrapping_key(passphrase, KdfParams.from_dict(slot.kdf))
    try:
        return unseal(wrapping, slot.wrapped_kek, aad("keyslot", vault=vault_id, user=user))
    except SealedDataError:
        return None


def upgrade_vault(url: str | None) -> tuple[str, str]:
    """Migrate an older vault schema to this code's revision; return (before, after). Audited as vault.upgrade."""
    url = db.resolve_url(url)
    engine = db.make_engine(url)
    try:
        head = db.head_revision()
        try:
            db.check_revision(engine, url)
            return head, head
        except VaultSchemaError:
            before = db.current_revision(engine)
            if before is None or before not in db.known_revisions():
                raise
        db.upgrade(engine)
        db.check_revision(engine, url)
        with Session(engine) as session, session.begin():
            ledger.append(
                session,
                now=utc_now(),
                actor=None,
                role=None,
                action="vault.upgrade",
                outcome="ok",
                details={"from": before, "to": head},
            )
        return before, head
    finally:
        engine.dispose()
