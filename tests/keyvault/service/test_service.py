"""The vault service on loopback (uvicorn in a thread) over SQLite and PostgreSQL, with real Shamir shares.

What it shows: a service-mode database holds no KEK wrap that a user's passphrase opens (an insider with
their passphrase and the database recovers nothing); a sealed service refuses every request; T-1
shares do not unseal, T do, a wrong share is refused; tokens expire, are revoked and failed logins lock
a name out; roles are enforced by the service, whatever the request says; no response carries a secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from keyvault import keys
from keyvault.envelope import KdfParams, derive_wrapping_key, unseal
from keyvault.errors import AuthenticationError, PermissionDenied, SealedDataError
from keyvault.records import RequestFile
from keyvault.schema import KeyVersionRow, VaultRow
from keyvault.service.api import NewRequest
from keyvault.service.client import VaultClient
from keyvault.service.errors import LoginLocked, ServiceSealed, TokenError, UnsealError
from keyvault.service.seal import Unsealer
from keyvault.service.setup import ServiceInit
from keyvault.vault import open_vault
from tests.keyvault.service.support import RunningService, init_vault, running_service
from tests.keyvault.support import ADMIN, ADMIN_PASS, FakeClock, execute, table_rows
from tests.keyvault.test_stolen_database import _database_bytes, _forms

OLGA_PASS = b"olga's own passphrase"
ANN_PASS = b"ann approves"


@pytest.fixture
def service_vault(vault_url: str) -> ServiceInit:
    """A fresh service-mode vault (2 of 3 shares) in the parametrized database."""
    return init_vault(vault_url, shares=3, threshold=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(vault_url: str, service_vault: ServiceInit, clock: FakeClock) -> Iterator[RunningService]:
    with running_service(vault_url, clock=clock, token_ttl=timedelta(minutes=5), max_failures=3) as running:
        yield running


def _materials(url: str, vault_id: str, kek: bytes, purpose: str) -> list[bytes]:
    """Every key version's material, unsealed with the KEK (what must never leave the service)."""
    engine = create_engine(url)
    with Session(engine) as session:
        rows = [r for r in session.scalars(select(KeyVersionRow)) if r.material_sealed is not None]
        found = [
            unseal(
                kek,
                bytes(r.material_sealed or b""),
                keys.material_aad(vault_id, r.key_handle, r.version, purpose),
            )
            for r in rows
        ]
    engine.dispose()
    return found


def unsealed_admin(service: RunningService, init: ServiceInit) -> VaultClient:
    client = VaultClient(service.url)
    client.unseal(init.shares[0])
    client.unseal(init.shares[1])
    client.login(ADMIN, ADMIN_PASS)
    return client


def test_init_prints_the_shares_and_no_user_credential_opens_the_kek(
    vault_url: str, service_vault: ServiceInit
) -> None:
    assert service_vault.mode == "shamir" and len(service_vault.shares) == 3 and service_vault.threshold == 2
    assert "ifadit-share:" not in repr(service_vault)  # shown once by the CLI, never in a repr or log
    assert table_rows(vault_url, "keyslots") == []  # nothing wraps the KEK under a passphrase
    (verifier,) = table_rows(vault_url, "login_verifiers")
    assert len(verifier["verifier"]) == 32


def test_an_insider_with_their_passphrase_and_the_database_recovers_nothing(
    vault_url: str, service_vault: ServiceInit
) -> None:
    with running_service(vault_url) as service:
        admin = unsealed_admin(service, service_vault)
        admin.add_user("olga", ["auditor", "investigator"], OLGA_PASS)
        handles = [admin.issue_key(f"C-{i}", "test", None).handle for i in range(2)]
        admin.rotate_key(handles[0])
        kek = service.state.kek()
        with service.state.vault_for(ADMIN) as vault:
            signing = vault._signing_key.reveal()
    # 1. the library refuses to open a service-mode database with any passphrase
    for user, passphrase in ((ADMIN, ADMIN_PASS), ("olga", OLGA_PASS)):
        with pytest.raises(PermissionDenied, match="service mode"):
            open_vault(vault_url, user, passphrase)
    # 2. by hand, as the issue's insider did: every Argon2id key her passphrase gives opens nothing
    engine = create_engine(vault_url)
    with Session(engine) as session:
        vault_row = session.scalars(select(VaultRow)).one()
        sealed = [
            vault_row.audit_signing_key_sealed,
            *(r.material_sealed for r in session.scalars(select(KeyVersionRow))),
        ]
    engine.dispose()
    for row in table_rows(vault_url, "login_verifiers"):
        kdf = row["kdf"] if isinstance(row["kdf"], dict) else json.loads(row["kdf"])
        derived = derive_wrapping_key(OLGA_PASS, KdfParams.from_dict(kdf))
        for blob in sealed:
            for associated in (b"", vault_row.id.encode()):
                with pytest.raises(SealedDataError):
                    unseal(derived, bytes(blob), associated)
    # 3. and the database holds neither the KEK, nor the signing key, nor any material, in any encoding
    materials = _materials(vault_url, vault_row.id, kek, "test")
    assert len(materials) == 3
    stolen = _database_bytes(vault_url)
    assert vault_row.id.encode() in stolen
    for secret in (kek, signing, *materials, ADMIN_PASS, OLGA_PASS):
        for form in _forms(secret):
            assert form not in stolen


def test_a_sealed_service_refuses_every_request(service: RunningService, service_vault: ServiceInit) -> None:
    client = VaultClient(service.url)
    status = client.status()
    assert status["sealed"] is True and status["threshold"] == 2 and status["progress"] == 0
    with pytest.raises(ServiceSealed, match="sealed"):
        client.login(ADMIN, ADMIN_PASS)
    raw = httpx.get(f"{service.url}/v1/keys", headers={"Authorization": "Bearer ifs_forged"}, timeout=5)
    assert raw.status_code == 503 and raw.json()["error"]["type"] == "ServiceSealed"
    assert "unseal" in raw.json()["error"]["hint"]


def test_threshold_minus_one_shares_do_not_unseal_and_threshold_do(
    service: RunningService, service_vault: ServiceInit
) -> None:
    client = VaultClient(service.url)
    assert client.unseal(service_vault.shares[2]) == {**client.status(), "sealed": True, "progress": 1}
    with pytest.raises(ServiceSealed):
        client.login(ADMIN, ADMIN_PASS)
    assert client.unseal(service_vault.shares[0])["sealed"] is False
    client.login(ADMIN, ADMIN_PASS)
    assert client.list_keys(None, None) == []


def test_a_wrong_share_is_refused_and_progress_starts_again(
    vault_url: str, service: RunningService, service_vault: ServiceInit, tmp_path: object
) -> None:
    other = init_vault(f"sqlite:///{tmp_path}/other.sqlite3")  # type: ignore[str-bytes-safe]
    client = VaultClient(service.url)
    client.unseal(service_vault.shares[0])
    with pytest.raises(UnsealError, match="did not rebuild this vault's KEK"):
        client.unseal(other.shares[1])
    assert client.status() | {} == {**client.status(), "sealed": True, "progress": 0}
    with pytest.raises(UnsealError, match="not an unseal share"):
        client.unseal("hello")
    client.unseal(service_vault.shares[1])
    assert client.unseal(service_vault.shares[2])["sealed"] is False


def test_tokens_expire_and_are_revoked(
    service: RunningService, service_vault: ServiceInit, clock: FakeClock
) -> None:
    admin = unsealed_admin(service, service_vault)
    admin.add_user("olga", ["auditor"], OLGA_PASS)
    olga = VaultClient(service.url)
    olga.login("olga", OLGA_PASS)
    assert [u.name for u in olga.list_users()] == [ADMIN, "olga"]
    clock.advance(timedelta(minutes=6))
    with pytest.raises(TokenError, match="expired or revoked"):
        olga.list_users()
    olga.login("olga", OLGA_PASS)
    admin.login(ADMIN, ADMIN_PASS)
    assert olga.logout() is True
    with pytest.raises(TokenError):
        olga.list_users()
    olga.login("olga", OLGA_PASS)
    assert admin.revoke_tokens("olga") == 1
    with pytest.raises(TokenError):
        olga.list_users()
    olga.login("olga", OLGA_PASS)
    admin.disable_user("olga", "left")
    with pytest.raises(TokenError):
        olga.list_users()
    with pytest.raises(AuthenticationError):
        olga.login("olga", OLGA_PASS)


def test_failed_logins_lock_the_name_out_in_the_service(
    service: RunningService, service_vault: ServiceInit, clock: FakeClock
) -> None:
    unsealed_admin(service, service_vault)
    client = VaultClient(service.url)
    for _ in range(3):
        with pytest.raises(TokenError, match="unknown user or wrong passphrase"):
            client.login(ADMIN, b"guess")
    with pytest.raises(LoginLocked, match="too many failed logins for admin"):
        client.login(ADMIN, ADMIN_PASS)  # even the right passphrase, while locked
    for _ in range(3):  # an unknown name locks the same way: the lockout does not tell names apart
        with pytest.raises(TokenError):
            client.login("nobody", b"guess")
    with pytest.raises(LoginLocked):
        client.login("nobody", b"guess")
    clock.advance(timedelta(minutes=11))
    client.login(ADMIN, ADMIN_PASS)
    failed = [e for e in client.audit_entries(None) if e.action == "service.login" and e.outcome == "failed"]
    assert len(failed) == 6


def test_roles_are_enforced_by_the_service_even_for_hand_made_requests(
    service: RunningService, service_vault: ServiceInit
) -> None:
    admin = unsealed_admin(service, service_vault)
    admin.add_user("oscar", ["operator"], b"oscar's passphrase")
    oscar = VaultClient(service.url)
    token, _ = oscar.login("oscar", b"oscar's passphrase")
    forged = {
        "name": "mallory",
        "roles": ["admin"],
        "passphrase_b64": base64.b64encode(b"x").decode(),
        "user": ADMIN,
        "role": "admin",
    }
    answer = httpx.post(
        f"{service.url}/v1/users",
        json=forged,
        headers={"Authorization": f"Bearer {token}", "X-User": ADMIN},
        timeout=5,
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == {
        "type": "PermissionDenied",
        "message": "user oscar lacks the role admin",
        "hint": answer.json()["error"]["hint"],
    }
    assert "mallory" not in [u.name for u in admin.list_users()]
    refused = [e for e in admin.audit_entries(None) if e.action == "user.add" and e.outcome == "refused"]
    assert [(e.actor, e.details["user"]) for e in refused] == [("oscar", "mallory")]
    for method, path in (
        ("POST", "/v1/keys"),
        ("POST", "/v1/sys/seal"),
        ("POST", "/v1/auth/revoke"),
        ("GET", "/v1/audit/bundle"),
    ):
        body = {"case": "C", "purpose": "p", "user": ADMIN}
        answer = httpx.request(
            method, f"{service.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert answer.status_code == 403, path


def _requests_round(service: RunningService, keep: Callable[[httpx.Response], None]) -> None:
    """ivan files a request, ann finds, lists, shows, approves and then denies it: every request route."""
    ivan, ann = VaultClient(service.url), VaultClient(service.url)
    for client, name, passphrase in ((ivan, "ivan", b"ivan's passphrase"), (ann, "ann", ANN_PASS)):
        client._http.event_hooks["response"] = [keep]
        client.login(name, passphrase)
    files = (RequestFile("cam1.png", "a" * 64), RequestFile("cam2.png", "b" * 64))
    filed = ivan.file_request(NewRequest("C-1", "warrant", files, "exact"))
    assert ivan.find_request("C-1", filed.input_digest, "exact") == filed
    assert [r.handle for r in ann.list_requests("C-1", "pending")] == [filed.handle]
    assert ann.show_request(filed.handle).files == files
    assert ann.approve_request(filed.handle).state == "approved"
    assert ann.close_request("deny", filed.handle, "changed my mind").state == "denied"


def test_no_response_carries_a_secret(
    service: RunningService, service_vault: ServiceInit, tmp_path: object
) -> None:
    received: list[bytes] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        received.append(response.content + str(response.headers).encode())

    admin = unsealed_admin(service, service_vault)
    admin._http.event_hooks["response"] = [keep]
    admin.add_user("ivan", ["investigator", "auditor"], b"ivan's passphrase")
    admin.add_user("ann", ["approver"], ANN_PASS)
    handle = admin.issue_key("C-1", "scan", None).handle
    admin.rotate_key(handle)
    for verb in ("suspend", "resume", "revoke"):
        admin.change_key_state(verb, handle, "test")
    second = admin.issue_key("C-2", "scan", None).handle
    admin.list_keys(None, None), admin.show_key(second), admin.list_users(), admin.policy()
    admin.audit_entries(None), admin.tree_heads(), admin.checkpoint()
    admin.export_audit(f"{tmp_path}/bundle.jsonl")
    admin.status()
    _requests_round(service, keep)
    kek = service.state.kek()
    with service.state.vault_for(ADMIN) as vault:
        secrets = [kek, vault._signing_key.reveal(), ADMIN_PASS, b"ivan's passphrase", ANN_PASS]
    secrets.extend(_materials(service.state.url, service.state.vault_id, kek, "scan"))
    secrets.extend(s.encode() for s in service_vault.shares)
    assert len(received) >= 14 and len(secrets) >= 7
    everything = b"\n".join(received)
    for secret in secrets:
        for form in _forms(secret):
            assert form not in everything


def test_admin_can_seal_the_service_again(service: RunningService, service_vault: ServiceInit) -> None:
    admin = unsealed_admin(service, service_vault)
    assert admin.seal()["sealed"] is True
    with pytest.raises(ServiceSealed):
        admin.list_keys(None, None)
    assert isinstance(service.state.unsealer, Unsealer) and service.state.sealed


def test_a_verifier_copied_onto_another_user_does_not_log_in_as_them(
    vault_url: str, service: RunningService, service_vault: ServiceInit
) -> None:
    admin = unsealed_admin(service, service_vault)
    admin.add_user("olga", ["auditor"], OLGA_PASS)
    rows = {row["user_id"]: row for row in table_rows(vault_url, "login_verifiers")}
    users = {row["name"]: row["id"] for row in table_rows(vault_url, "users")}
    mine = rows[users["olga"]]
    execute(
        vault_url,
        "UPDATE login_verifiers SET verifier = :verifier, kdf = :kdf WHERE user_id = :admin",
        verifier=mine["verifier"],
        kdf=mine["kdf"] if isinstance(mine["kdf"], str) else json.dumps(mine["kdf"]),
        admin=users[ADMIN],
    )
    with pytest.raises(TokenError, match="unknown user or wrong passphrase"):
        VaultClient(service.url).login(ADMIN, OLGA_PASS)  # the verifier is bound to its user by a KEK MAC
