"""Service mode: rows edited in the database are refused by the service, where no user can recompute a tag.

In service mode the KEK (and so the row-integrity key) lives only in the unsealed service: an insider
who writes the database cannot forge a tag, whatever passphrase they hold. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from keyvault.errors import TamperedRow
from keyvault.service.client import VaultClient
from keyvault.service.setup import ServiceInit
from tests.keyvault.service.support import RunningService, init_vault, running_service
from tests.keyvault.service.test_service import unsealed_admin
from tests.keyvault.support import execute, table_rows


@pytest.fixture
def service_vault(vault_url: str) -> ServiceInit:
    return init_vault(vault_url, shares=3, threshold=2)


@pytest.fixture
def service(vault_url: str, service_vault: ServiceInit) -> Iterator[RunningService]:
    with running_service(vault_url, token_ttl=timedelta(minutes=5)) as running:
        yield running


def test_a_role_escalated_in_the_database_is_refused_by_the_service(
    service: RunningService, service_vault: ServiceInit, vault_url: str
) -> None:
    admin = unsealed_admin(service, service_vault)
    admin.add_user("oscar", ["operator"], b"oscar's passphrase")
    oscar = VaultClient(service.url)
    oscar.login("oscar", b"oscar's passphrase")
    execute(vault_url, "UPDATE users SET roles = 'admin,operator' WHERE name = 'oscar'")
    with pytest.raises(TamperedRow) as caught:
        oscar.issue_key("C-1", "escalated", None)
    message = "users row 'oscar': security fields altered outside the vault (roles): refused"
    assert str(caught.value) == message and caught.value.exit_code == 4
    assert table_rows(vault_url, "keys") == []
    with pytest.raises(TamperedRow, match="users row 'oscar'"):
        VaultClient(service.url).login("oscar", b"oscar's passphrase")  # nor can oscar log in again
    refused = [e for e in admin.audit_entries(None) if e.outcome == "refused" and e.actor == "oscar"]
    assert [(e.action, e.details["error"]) for e in refused] == [
        ("vault.unlock", message),
        ("service.login", message),
    ]


def test_policy_switched_off_in_the_database_is_refused_by_the_service(
    service: RunningService, service_vault: ServiceInit, vault_url: str
) -> None:
    admin = unsealed_admin(service, service_vault)
    execute(vault_url, "UPDATE ifadit_vault SET require_approval = :off", off=False)
    with pytest.raises(TamperedRow, match=r"ifadit_vault row '[0-9a-f]+': .*\(require_approval\): refused"):
        admin.issue_key("C-1", "after the edit", None)
    raw = httpx.post(  # a refusal against the recorded state, not a fault of the service: 409
        f"{service.url}/v1/keys",
        json={"case": "C-1", "purpose": "p"},
        headers={"Authorization": f"Bearer {admin.token}"},
        timeout=5,
    )
    assert raw.status_code == 409 and raw.json()["error"]["type"] == "TamperedRow"
    assert table_rows(vault_url, "keys") == []
