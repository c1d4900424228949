"""``VaultClient``: the ``VaultAPI`` over HTTP(S), for the CLI on a workstation that has no database access.

Transport rules: ``https://`` verifies the service's certificate (pinned with a CA file, ``--vault-ca``);
plain ``http://`` is accepted only for a loopback host; ``unix:///path/to.sock`` talks over a Unix
socket. Errors come back typed (the service sends the ``VaultError`` subclass's name), so a command
exits with the same code as on a local vault. Inclusion and consistency proofs are verified here again
against the vault's public key, as the library does locally. Imports httpx, the result types and the
offline verifier only: no database, no FastAPI, no crypto recipes.
"""

from __future__ import annotations

import base64
import io
import os
import ssl
import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from keyvault import errors
from keyvault.records import AdminActionInfo, KeyInfo, Policy, RequestInfo, UserInfo
from keyvault.service import errors as service_errors
from keyvault.service.api import ClosedOnExit, NewRequest, PolicyChange
from keyvault.service.jobs import DEFAULT_MAX_JOB_BYTES, pack, unpack
from keyvault.service.urls import is_loopback
from keyvault.service.wire import decode, decode_list

if TYPE_CHECKING:  # the audit code loads with the first audit call: a restore needs none of it
    from keyvault.audit import AuditEntry, InclusionProof, TreeHead
    from keyvault.excerpt import AuditFilter

DEFAULT_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 6 * 3600.0  # a job answers when its last file is done
_ERRORS: dict[str, type[errors.VaultError]] = {
    cls.__name__: cls
    for module in (errors, service_errors)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, errors.VaultError)
}


def _trusting_nothing() -> ssl.SSLContext:
    """For plain HTTP on loopback or a Unix socket: no TLS, so no store of authorities to load (httpx loads
    certifi's by default, 45 ms of every command's start-up); a context that verifies and trusts no
    authority, so that anything that did reach TLS through it (the client follows no redirect) fails."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _transport(url: str, ca: Path | None, timeout: float) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        socket_path = unquote(parts.path)
        if not socket_path:
            raise service_errors.ServiceUnavailable(f"{url}: no socket path (expected unix:///path/to.sock)")
        transport = httpx.HTTPTransport(uds=socket_path, verify=_trusting_nothing())
        return "http://vault", {"transport": transport, "timeout": timeout}
    if parts.scheme == "http":
        if not is_loopback(parts.hostname or ""):
            raise service_errors.ServiceUnavailable(
                f"refusing plain HTTP to {parts.hostname}: only loopback may skip TLS",
                hint="use https:// with --vault-ca, or a unix:// socket",
            )
        return url.rstrip("/"), {"timeout": timeout, "verify": _trusting_nothing()}
    if parts.scheme == "https":
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else True
        return url.rstrip("/"), {"verify": verify, "timeout": timeout}
    raise service_errors.ServiceUnavailable(
        f"{url} is not a vault-service URL (https://, http://127.0.0.1, unix://)"
    )


class VaultClient(ClosedOnExit):
    """The vault service seen from a workstation: one token, one base URL."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        try:
            base, options = _transport(self.url, ca, timeout)
        except (OSError, ssl.SSLError) as exc:
            raise service_errors.ServiceUnavailable(
                f"cannot load the CA file {ca} ({type(exc).__name__})"
            ) from None
        self._http = httpx.Client(base_url=base, **options)
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"VaultClient(url={self.url!r})"

    # ---------------------------------------------------------------- plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(
                method, path, json=json, params=query, headers=headers, content=content, **extra
            )
        except httpx.HTTPError as exc:
            raise service_errors.ServiceUnavailable(
                f"cannot reach the vault service at {self.url} ({type(exc).__name__})",
                hint="is `ifadit vault serve` running there? check --vault and --vault-ca",
            ) from None
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            name, message, hint = str(error["type"]), str(error["message"]), error.get("hint")
        except (ValueError, KeyError, TypeError):
            raise service_errors.ServiceUnavailable(
                f"the vault service at {self.url} answered HTTP {response.status_code} without an error body"
            ) from None
        if name == "ValueError":  # the library refused an argument: exit 2, as a local usage error
            raise service_errors.BadRequest(message, hint=hint)
        if name == "JobFailed":
            code = error.get("exit_code")
            raise service_errors.JobFailed(message, hint=hint, exit_code=code if isinstance(code, int) else 1)
        raise _ERRORS.get(name, errors.VaultError)(message, hint=hint)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise service_errors.ServiceUnavailable(
                f"the vault service at {self.url} answered without JSON"
            ) from None

    # ---------------------------------------------------------------- seal, login

    def status(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/sys/status"))

    def unseal(self, share: str) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/sys/unseal", json={"share": share}))

    def seal(self) -> dict[str, Any]:
        return dict(self._json("POST", "/v1/sys/seal"))

    def login(self, user: str, passphrase: bytes) -> tuple[str, datetime]:
        """A new token for ``user`` (also kept in this client) and its expiry."""
        body = {"user": user, "passphrase_b64": base64.b64encode(passphrase).decode("ascii")}
        answer = self._json("POST", "/v1/auth/login", json=body)
        self.token = str(answer["token"])
        return self.token, datetime.fromisoformat(answer["expires"])

    def logout(self) -> bool:
        return bool(self._json("POST", "/v1/auth/logout")["revoked"])

    def revoke_tokens(self, user: str) -> int:
        return int(self._json("POST", "/v1/auth/revoke", json={"user": user})["revoked"])

    def _vault_info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(self._json("GET", "/v1/vault"))
        return self._info

    @property
    def vault_id(self) -> str:
        return str(self._vault_info()["vault_id"])

    @property
    def public_key(self) -> bytes:
        return base64.b64decode(self._vault_info()["public_key_b64"])

    # ---------------------------------------------------------------- VaultAPI

    def add_user(
        self, name: str, roles: list[str], passphrase: bytes, admin_action: str | None = None
    ) -> UserInfo:
        body = {
            "name": name,
            "roles": list(roles),
            "passphrase_b64": base64.b64encode(passphrase).decode("ascii"),
            "admin_action": admin_action,
        }
        return decode(UserInfo, self._json("POST", "/v1/users", json=body))

    def list_users(self) -> list[UserInfo]:
        return decode_list(UserInfo, self._json("GET", "/v1/users"))

    def disable_user(self, name: str, reason: str | None) -> UserInfo:
        return decode(UserInfo, self._json("POST", f"/v1/users/{name}/disable", json={"reason": reason}))

    def policy(self) -> Policy:
        return decode(Policy, self._json("GET", "/v1/policy"))

    def set_policy(self, change: PolicyChange, admin_action: str | None = None) -> Policy:
        body = {
            "require_approval": change.require_approval,
            "approval_ttl_s": None if change.approval_ttl is None else change.approval_ttl.total_seconds(),
            "unlock_delay_s": None if change.unlock_delay is None else change.unlock_delay.total_seconds(),
            "approvals": change.approvals,
            "admin_action": admin_action,
        }
        return decode(Policy, self._json("POST", "/v1/policy", json=body))

    def issue_key(self, case: str, purpose: str, expires: datetime | None) -> KeyInfo:
        body = {"case": case, "purpose": purpose, "expires": expires.isoformat() if expires else None}
        return decode(KeyInfo, self._json("POST", "/v1/keys", json=body))

    def list_keys(self, case: str | None, state: str | None) -> list[KeyInfo]:
        return decode_list(KeyInfo, self._json("GET", "/v1/keys", params={"case": case, "state": state}))

    def show_key(self, handle: str) -> KeyInfo:
        return decode(KeyInfo, self._json("GET", f"/v1/keys/{handle}"))

    def rotate_key(self, handle: str) -> KeyInfo:
        return decode(KeyInfo, self._json("POST", f"/v1/keys/{handle}/rotate"))

    def change_key_state(self, verb: str, handle: str, reason: str | None) -> KeyInfo:
        return decode(KeyInfo, self._json("POST", f"/v1/keys/{handle}/{verb}", json={"reason": reason}))

    def destroy_key(self, handle: str, reason: str, window: timedelta, admin_action: str | None) -> KeyInfo:
        body = {"reason": reason, "window_s": window.total_seconds(), "admin_action": admin_action}
        return decode(KeyInfo, self._json("POST", f"/v1/keys/{quote(handle, safe='')}/destroy", json=body))

    def cancel_destroy(self, handle: str, reason: str) -> KeyInfo:
        path = f"/v1/keys/{quote(handle, safe='')}/cancel-destroy"
        return decode(KeyInfo, self._json("POST", path, json={"reason": reason}))

    def list_admin_actions(self, state: str | None) -> list[AdminActionInfo]:
        return decode_list(AdminActionInfo, self._json("GET", "/v1/admin-actions", params={"state": state}))

    def show_admin_action(self, handle: str) -> AdminActionInfo:
        return decode(AdminActionInfo, self._json("GET", f"/v1/admin-actions/{quote(handle, safe='')}"))

    def decide_admin_action(self, verb: str, handle: str) -> AdminActionInfo:
        path = f"/v1/admin-actions/{quote(handle, safe='')}/{quote(verb, safe='')}"
        return decode(AdminActionInfo, self._json("POST", path))

    def file_request(self, new: NewRequest) -> RequestInfo:
        body = {
            "case": new.case,
            "reason": new.reason,
            "mode": new.mode,
            "files": [{"name": f.name, "sha256": f.sha256} for f in new.files],
            "key": new.key,
        }
        return decode(RequestInfo, self._json("POST", "/v1/requests", json=body))

    def find_request(self, case: str, input_digest: str, mode: str) -> RequestInfo | None:
        params = {"case": case, "digest": input_digest, "mode": mode}
        found = self._json("GET", "/v1/requests/open", params=params)["request"]
        return None if found is None else decode(RequestInfo, found)

    def list_requests(self, case: str | None, state: str | None) -> list[RequestInfo]:
        return decode_list(
            RequestInfo, self._json("GET", "/v1/requests", params={"case": case, "state": state})
        )

    def show_request(self, handle: str) -> RequestInfo:
        return decode(RequestInfo, self._json("GET", f"/v1/requests/{quote(handle, safe='')}"))

    def approve_request(self, handle: str) -> RequestInfo:
        return decode(RequestInfo, self._json("POST", f"/v1/requests/{quote(handle, safe='')}/approve"))

    def close_request(self, verb: str, handle: str, reason: str) -> RequestInfo:
        path = f"/v1/requests/{quote(handle, safe='')}/{verb}"
        return decode(RequestInfo, self._json("POST", path, json={"reason": reason}))

    def audit_entries(self, case: str | None) -> list[AuditEntry]:
        from keyvault.audit import AuditEntry

        return decode_list(AuditEntry, self._json("GET", "/v1/audit/entries", params={"case": case}))

    def tree_heads(self) -> list[TreeHead]:
        from keyvault.audit import TreeHead

        return decode_list(TreeHead, self._json("GET", "/v1/audit/heads"))

    def checkpoint(self) -> str:
        return str(self._json("POST", "/v1/audit/checkpoint")["note"])

    def prove(self, seq: int) -> InclusionProof:
        """Entry ``seq``'s inclusion proof, checked here against the vault's key (``AuditVerificationError``)."""
        from keyvault.audit import InclusionProof
        from keyvault.verify import verify_inclusion_proof

        proof = decode(InclusionProof, self._json("POST", "/v1/audit/prove", json={"seq": seq}))
        verify_inclusion_proof(proof, self.public_key)
        return proof

    def consistency(self, old_size: int, new_size: int | None) -> tuple[TreeHead, TreeHead, list[bytes]]:
        """Two signed heads and the proof that the newer extends the older, checked here as by the library."""
        from keyvault.audit import TreeHead
        from keyvault.verify import verify_consistency_between

        answer = self._json("GET", "/v1/audit/consistency", params={"old": old_size, "new": new_size})
        try:
            old, new = decode(TreeHead, answer["old"]), decode(TreeHead, answer["new"])
            path = [bytes.fromhex(h) for h in answer["proof"]]
        except (KeyError, TypeError, ValueError):
            raise errors.VaultError("the vault service sent a malformed consistency proof") from None
        verify_consistency_between(old, new, path, self.public_key)
        return old, new, path

    def keyed_digest(self, sha256_hex: str, files: int) -> str:
        """The keyed digest of content whose SHA-256 the caller computed: only that hex is sent."""
        body = {"sha256": sha256_hex, "files": files}
        return str(self._json("POST", "/v1/audit/digest", json=body)["digest"])

    def verify_audit(self) -> str:
        """The service's own check of the live log (chain, signed heads, index columns): its summary line.

        Raises ``AuditVerificationError`` (exit 4) naming the fault. An auditor should not stop here:
        the bundle from ``export_audit`` verified on their own machine against a pinned key is the proof.
        """
        return str(self._json("POST", "/v1/audit/verify")["summary"])

    def export_audit(self, path: str | os.PathLike[str], where: AuditFilter | None = None) -> int:
        """Write the service's audit bundle (an excerpt with ``where``) to ``path`` (temporary file and
        rename); return how many entries it shows in full."""
        params: dict[str, Any] = {}
        if where is not None:
            params = {
                "case": where.case,
                "actor": list(where.actors) or None,
                "action": list(where.actions) or None,
                "since": where.since.isoformat() if where.since else None,
                "until": where.until.isoformat() if where.until else None,
            }
        response = self._request("GET", "/v1/audit/bundle", params=params)
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(response.text)
        os.replace(temporary, target)
        try:
            return int(response.headers["x-ifadit-entries"])
        except (KeyError, ValueError):
            raise service_errors.ServiceUnavailable(
                f"the vault service at {self.url} sent a bundle without its entry count"
            ) from None

    # ---------------------------------------------------------------- jobs

    def run_job(
        self,
        kind: str,
        params: Mapping[str, Any],
        files: Mapping[str, Path],
        into: Path,
        *,
        max_bytes: int = DEFAULT_MAX_JOB_BYTES,
    ) -> dict[str, Any]:
        """Run a file-carrying job in the service: send ``files`` (by relative name) and ``params``,
        unpack the outputs into ``into`` and return the job's result (``JobFailed`` when it stopped)."""
        with tempfile.TemporaryFile() as upload:
            pack(upload, params, files)
            upload.seek(0)
            response = self._request(
                "POST", f"/v1/jobs/{quote(kind, safe='')}", content=upload, timeout=JOB_TIMEOUT_S
            )
        return unpack(io.BytesIO(response.content), into, max_bytes=max_bytes)

    def close(self) -> None:
        self._http.close()
