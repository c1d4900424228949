"""Hypothesis state machine over the key lifecycle: random sequences of verbs against a simple model.

The model knows the SP 800-57 transition table; the vault must agree on every step: legal verbs succeed,
illegal ones raise KeyStateError naming the state, material per version never changes, anonymizing uses
the newest version, restoring any version works only while the key is active, destroy leaves tombstones.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from keyvault import access, keys
from keyvault.errors import KeyStateError
from keyvault.vault import Vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, add_user, cheap_kdf, table_rows

LEGAL = {
    "rotate": ({"active"}, "active"),
    "suspend": ({"active"}, "suspended"),
    "resume": ({"suspended"}, "active"),
    "revoke": ({"active", "suspended"}, "revoked"),
    "destroy": ({"revoked"}, "destroyed"),
}


class KeyLifecycle(RuleBasedStateMachine):
    """Model: handle -> state, number of versions, and the material seen for each version."""

    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ifadit-sm-"))
        self.vault = Vault.init(f"sqlite:///{self.folder / 'v.sqlite3'}", ADMIN, ADMIN_PASS, kdf=cheap_kdf())
        access.set_policy(self.vault, require_approval=False)
        self.user = add_user(self.vault, "ops", "operator", "investigator")
        self.state: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.material: dict[tuple[str, int], bytes] = {}

    def teardown(self) -> None:
        self.user.close()
        self.vault.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(target=handles, case=st.sampled_from(["C-1", "C-2"]))
    def issue(self, case: str) -> str:
        handle = keys.issue(self.vault, case, "machine").handle
        self.state[handle], self.versions[handle] = "active", 1
        return handle

    @rule(handle=handles, verb=st.sampled_from(sorted(LEGAL)))
    def transition(self, handle: str, verb: str) -> None:
        allowed, target = LEGAL[verb]
        call = getattr(keys, verb)
        reason: dict[str, object] = {"reason": "machine"} if verb in ("revoke", "destroy") else {}
        if verb == "destroy":
            reason["window"] = timedelta(
                0
            )  # erased at once (the pending window: tests/keyvault/test_admin_actions.py)
        if self.state[handle] in allowed:
            info = call(self.vault, handle, **reason)
            self.state[handle] = target
            if verb == "rotate":
                self.versions[handle] += 1
            assert info.state == target and info.current_version == self.versions[handle]
        else:
            try:
                call(self.vault, handle, **reason)
            except KeyStateError as exc:
                assert f"is {self.state[handle]}: {verb} refused" in str(exc)
            else:
                raise AssertionError(f"{verb} from {self.state[handle]} was accepted")

    @rule(handle=handles)
    def anonymize(self, handle: str) -> None:
        self._use(handle, "anonymize", None)

    @rule(handle=handles, data=st.data())
    def restore(self, handle: str, data: st.DataObject) -> None:
        version = data.draw(st.integers(min_value=1, max_value=self.versions[handle]))
        self._use(handle, "restore", version)

    def _use(self, handle: str, purpose: str, version: int | None) -> None:
        try:
            key = keys.unseal_for_use(self.user, handle, purpose=purpose, version=version)
        except KeyStateError as exc:
            assert self.state[handle] != "active" and f"is {self.state[handle]}" in str(exc)
            return
        assert self.state[handle] == "active"
        assert key.version == (version or self.versions[handle])
        assert self.material.setdefault((handle, key.version), key.material) == key.material

    @invariant()
    def database_agrees(self) -> None:
        rows = {r["handle"]: r["state"] for r in table_rows(self.vault.url, "keys")}
        assert rows == self.state
        for version in table_rows(self.vault.url, "key_versions"):
            destroyed = self.state[version["key_handle"]] == "destroyed"
            assert (version["material_sealed"] is None) == destroyed


KeyLifecycle.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestKeyLifecycle = KeyLifecycle.TestCase
