"""The HTTP API of the vault service (FastAPI): seal status and unseal, login, and the vault library per user.

Every vault route takes ``Authorization: Bearer <token>``, runs the library's function inside a vault
acting as the token's user (``ServiceState.vault_for``), so roles are checked and every action is
audited by ``Vault.action`` exactly as on a local vault: the client's claims count for nothing. While
sealed, every route but ``/v1/sys/*`` answers 503. Errors are ``{"error": {"type", "message", "hint"}}``
with the ``VaultError`` subclass's name, so the client raises the same type and the CLI exits with
the same code. No response carries key material, the KEK, shares or the signing key.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from keyvault import admin_actions, auditor, errors, keys
from keyvault.excerpt import AuditFilter
from keyvault.records import RequestFile
from keyvault.service import errors as service_errors
from keyvault.service.api import CLOSE_VERBS, DECIDE_VERBS, KEY_VERBS, NewRequest, PolicyChange
from keyvault.service.auth import Authenticator
from keyvault.service.jobs import DEFAULT_MAX_JOB_BYTES, JobRunner, folder_files, pack, unpack
from keyvault.service.local_api import LocalAPI
from keyvault.service.state import ServiceState, ServiceVault
from keyvault.service.wire import encode

T = TypeVar("T")
MAX_BODY_BYTES = 1 << 20  # no request but a job's needs more
JOBS_PATH = "/v1/jobs/"
ENTRIES_HEADER = "X-Ifadit-Entries"  # how many entries an exported bundle shows in full
MAX_DESTROY_WINDOW_S = 36_500 * 86_400  # a century: any longer window is a typo (and overflows dates)
STATUS_CODES: tuple[tuple[type[Exception], int], ...] = (
    (service_errors.ServiceSealed, 503),
    (service_errors.LoginLocked, 429),
    (errors.AuthenticationError, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.KeyStateError, 409),
    (errors.ApprovalPending, 409),
    (errors.IntegrityError, 409),  # the recorded state contradicts itself: a refusal, not a server fault
    (service_errors.JobFailed, 422),
    (errors.VaultError, 400),
)


def status_code(exc: Exception) -> int:
    """The HTTP status of a vault error (400 for any other ``VaultError``)."""
    return next(code for kind, code in STATUS_CODES if isinstance(exc, kind))


def error_body(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "hint": hint}}


class LoginBody(BaseModel):
    user: str = Field(max_length=128)
    passphrase_b64: str = Field(max_length=4096)


class ShareBody(BaseModel):
    share: str = Field(max_length=256)


class NewUserBody(BaseModel):
    name: str = Field(max_length=128)
    roles: list[str] = Field(max_length=16)
    passphrase_b64: str = Field(max_length=4096)
    admin_action: str | None = Field(default=None, max_length=128)


class ReasonBody(BaseModel):
    reason: str | None = Field(default=None, max_length=4096)


class RevokeBody(BaseModel):
    user: str = Field(max_length=128)


class PolicyBody(BaseModel):
    require_approval: bool | None = None
    approval_ttl_s: float | None = None
    unlock_delay_s: float | None = None
    approvals: int | None = None
    admin_action: str | None = Field(default=None, max_length=128)


class IssueBody(BaseModel):
    case: str = Field(max_length=256)
    purpose: str = Field(max_length=4096)
    expires: datetime | None = None


class FileBody(BaseModel):
    name: str = Field(max_length=4096)
    sha256: str = Field(max_length=64)


class RequestBody(BaseModel):
    case: str = Field(max_length=256)
    reason: str = Field(max_length=4096)
    mode: str = Field(max_length=16)
    files: list[FileBody] = Field(max_length=10_000)
    key: str | None = Field(default=None, max_length=128)


class CloseBody(BaseModel):
    reason: str = Field(max_length=4096)


class DestroyBody(BaseModel):
    reason: str = Field(max_length=4096)
    window_s: float = Field(default=keys.DESTROY_WINDOW.total_seconds(), ge=0, le=MAX_DESTROY_WINDOW_S)
    admin_action: str | None = Field(default=None, max_length=128)


class ProveBody(BaseModel):
    seq: int = Field(ge=1)


class DigestBody(BaseModel):
    sha256: str = Field(max_length=64)  # of the content, or of the files' SHA-256 list: never the content
    files: int = Field(default=1, ge=1, le=1_000_000)


def _passphrase(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("passphrase_b64 is not base64") from None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class _Context:
    """What every route needs: the service state, the authenticator, and running work as the caller."""

    state: ServiceState
    auth: Authenticator

    def as_user(self, request: Request, work: Callable[[ServiceVault], T]) -> T:
        """Run `work` on the vault as the user the request's bearer token names (refused while sealed)."""
        if self.state.sealed:
            raise service_errors.ServiceSealed()
        user = self.auth.user_of(_bearer(request))
        with self.state.vault_for(user) as vault:
            return work(vault)

    def api_call(self, request: Request, work: Callable[[LocalAPI], Any]) -> Any:
        """`work` on the library API as the caller, its result encoded for the wire."""
        return encode(self.as_user(request, lambda vault: work(LocalAPI(vault))))

    def run_job(self, request: Request, runner: JobRunner, body: bytes, max_bytes: int) -> bytes:
        """Unpack a job's upload into a private folder, run it as the caller, and pack its outputs."""
        with tempfile.TemporaryDirectory(prefix="ifadit-job-") as work:
            inputs, outputs = Path(work) / "inputs", Path(work) / "outputs"
            params = unpack(io.BytesIO(body), inputs, max_bytes=max_bytes)
            outputs.mkdir(mode=0o700)
            result = self.as_user(request, lambda vault: _run_runner(runner, vault, inputs, outputs, params))
            answer = io.BytesIO()
            pack(answer, result, folder_files(outputs))
            return answer.getvalue()


def _run_runner(
    runner: JobRunner, vault: ServiceVault, inputs: Path, outputs: Path, params: dict[str, Any]
) -> dict[str, Any]:
    """The runner's result; an error of the pipeline (anything with an exit code) becomes ``JobFailed``."""
    try:
        return runner(vault, inputs, outputs, params)
    except (errors.VaultError, ValueError):
        raise
    except Exception as exc:
        exit_code = getattr(exc, "exit_code", None)
        if not isinstance(exit_code, int):
            raise
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        raise service_errors.JobFailed(message, hint=getattr(exc, "hint", None), exit_code=exit_code) from exc


def create_app(
    state: ServiceState,
    auth: Authenticator | None = None,
    *,
    jobs: Mapping[str, JobRunner] | None = None,
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
) -> FastAPI:
    """The API over one service state (tests pass their own ``Authenticator`` with a short lockout).

    ``jobs`` are the file-carrying jobs this service runs by name (``ifadit vault serve`` registers
    anonymize and restore); ``max_job_bytes`` bounds what one job carries each way.
    """
    app = FastAPI(title="ifadit vault service", docs_url=None, redoc_url=None, openapi_url=None)
    _guards(app, max_job_bytes)
    ctx = _Context(state, auth or Authenticator(state))
    _seal_and_login_routes(app, ctx)
    _user_and_policy_routes(app, ctx)
    _admin_action_routes(app, ctx)  # before _key_routes: its key routes precede /v1/keys/{handle}/{verb}
    _key_routes(app, ctx)
    _request_routes(app, ctx)
    _audit_routes(app, ctx)
    _audit_proof_routes(app, ctx)
    _job_routes(app, ctx, dict(jobs or {}), max_job_bytes)
    return app


def _guards(app: FastAPI, max_job_bytes: int) -> None:
    """The body-size caps and the error handlers: every failure leaves as a typed JSON error."""

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Any:
        length = request.headers.get("content-length")
        limit = max_job_bytes + MAX_BODY_BYTES if request.url.path.startswith(JOBS_PATH) else MAX_BODY_BYTES
        if length is None and request.headers.get("transfer-encoding"):
            return JSONResponse(error_body("VaultError", "a request body needs a Content-Length"), 411)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse(error_body("VaultError", "request body too large"), status_code=413)
        return await call_next(request)

    @app.exception_handler(errors.VaultError)
    async def vault_error(_request: Request, exc: errors.VaultError) -> JSONResponse:
        body = error_body(type(exc).__name__, str(exc.args[0]), exc.hint)
        if isinstance(exc, service_errors.JobFailed):
            body["error"]["exit_code"] = exc.exit_code  # the pipeline's, so the CLI exits as it would locally
        return JSONResponse(body, status_code=status_code(exc))

    @app.exception_handler(ValueError)
    async def value_error(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(error_body("ValueError", str(exc)), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in item.get("loc", ())) for item in exc.errors()})
        return JSONResponse(
            error_body("ValueError", f"malformed request: {', '.join(fields)}"), status_code=422
        )


def _seal_and_login_routes(app: FastAPI, ctx: _Context) -> None:
    """Unseal, seal, status, login, logout and token revocation."""

    @app.get("/v1/sys/status")
    def sys_status() -> dict[str, Any]:
        return ctx.state.status()

    @app.post("/v1/sys/unseal")
    def sys_unseal(body: ShareBody) -> dict[str, Any]:
        return ctx.state.submit_share(body.share)

    @app.post("/v1/sys/seal")
    def sys_seal(request: Request) -> dict[str, Any]:
        def work(vault: ServiceVault) -> None:
            with vault.action("service.seal", role="admin"):
                pass

        ctx.as_user(request, work)
        ctx.state.seal()
        ctx.auth.tokens.clear()
        return ctx.state.status()

    @app.post("/v1/auth/login")
    def login(body: LoginBody) -> dict[str, Any]:
        if ctx.state.sealed:
            raise service_errors.ServiceSealed()
        token, expires = ctx.auth.login(body.user, _passphrase(body.passphrase_b64))
        return {"token": token, "user": body.user, "expires": expires.isoformat()}

    @app.post("/v1/auth/logout")
    def logout(request: Request) -> dict[str, Any]:
        token = _bearer(request)
        ctx.auth.user_of(token)
        return {"revoked": ctx.auth.tokens.revoke(token or "")}

    @app.post("/v1/auth/revoke")
    def revoke(request: Request, body: RevokeBody) -> dict[str, Any]:
        def work(vault: ServiceVault) -> int:
            with vault.action("service.revoke_tokens", role="admin", details={"user": body.user}) as act:
                count = ctx.auth.tokens.revoke_user(body.user)
                act.details["tokens"] = count
                return count

        return {"revoked": ctx.as_user(request, work)}

    @app.get("/v1/vault")
    def vault_info(request: Request) -> dict[str, Any]:
        def work(vault: ServiceVault) -> dict[str, Any]:
            return {
                "vault_id": vault.id,
                "public_key_b64": base64.b64encode(vault.public_key).decode("ascii"),
                "user": vault.user.name,
            }

        return ctx.as_user(request, work)


def _user_and_policy_routes(app: FastAPI, ctx: _Context) -> None:
    """Users and the restore policy."""

    @app.post("/v1/users")
    def users_add(request: Request, body: NewUserBody) -> Any:
        return ctx.api_call(
            request,
            lambda api: api.add_user(
                body.name, body.roles, _passphrase(body.passphrase_b64), body.admin_action
            ),
        )

    @app.get("/v1/users")
    def users_list(request: Request) -> Any:
        return ctx.api_call(request, lambda api: api.list_users())

    @app.post("/v1/users/{name}/disable")
    def users_disable(request: Request, name: str, body: ReasonBody) -> Any:
        result = ctx.api_call(request, lambda api: api.disable_user(name, body.reason))
        ctx.auth.tokens.revoke_user(name)
        return result

    @app.get("/v1/policy")
    def policy_show(request: Request) -> Any:
        return ctx.api_call(request, lambda api: api.policy())

    @app.post("/v1/policy")
    def policy_set(request: Request, body: PolicyBody) -> Any:
        return ctx.api_call(
            request,
            lambda api: api.set_policy(
                PolicyChange(
                    require_approval=body.require_approval,
                    approval_ttl=None
                    if body.approval_ttl_s is None
                    else timedelta(seconds=body.approval_ttl_s),
                    unlock_delay=None
                    if body.unlock_delay_s is None
                    else timedelta(seconds=body.unlock_delay_s),
                    approvals=body.approvals,
                ),
                body.admin_action,
            ),
        )


def _key_routes(app: FastAPI, ctx: _Context) -> None:
    """The key lifecycle."""

    @app.post("/v1/keys")
    def keys_issue(request: Request, body: IssueBody) -> Any:
        return ctx.api_call(request, lambda api: api.issue_key(body.case, body.purpose, body.expires))

    @app.get("/v1/keys")
    def keys_list(
        request: Request, case: str | None = None, key_state: str | None = Query(None, alias="state")
    ) -> Any:
        return ctx.api_call(request, lambda api: api.list_keys(case, key_state))

    @app.get("/v1/keys/{handle}")
    def keys_show(request: Request, handle: str) -> Any:
        return ctx.api_call(request, lambda api: api.show_key(handle))

    @app.post("/v1/keys/{handle}/rotate")
    def keys_rotate(request: Request, handle: str) -> Any:
        return ctx.api_call(request, lambda api: api.rotate_key(handle))

    @app.post("/v1/keys/{handle}/{verb}")
    def keys_state(request: Request, handle: str, verb: str, body: ReasonBody) -> Any:
        _check_verb("key", verb, ("rotate", *KEY_VERBS), KEY_VERBS)
        return ctx.api_call(request, lambda api: api.change_key_state(verb, handle, body.reason))


def _check_verb(what: str, verb: str, offered: Sequence[str], allowed: Sequence[str]) -> None:
    """`NotFound` unless `verb` is one of `allowed` (the hint lists every action the route family offers)."""
    if verb not in allowed:
        raise errors.NotFound(f"unknown {what} action {verb!r}", hint=f"one of: {', '.join(offered)}")


def _request_routes(app: FastAPI, ctx: _Context) -> None:
    """Restore requests: file (names and SHA-256s only), list, show, approve, deny and cancel."""

    @app.post("/v1/requests")
    def requests_file(request: Request, body: RequestBody) -> Any:
        new = NewRequest(
            case=body.case,
            reason=body.reason,
            files=tuple(RequestFile(name=f.name, sha256=f.sha256) for f in body.files),
            mode=body.mode,
            key=body.key,
        )
        return ctx.api_call(request, lambda api: api.file_request(new))

    @app.get("/v1/requests")
    def requests_list(
        request: Request, case: str | None = None, request_state: str | None = Query(None, alias="state")
    ) -> Any:
        return ctx.api_call(request, lambda api: api.list_requests(case, request_state))

    @app.get("/v1/requests/open")
    def requests_find(request: Request, case: str, digest: str, mode: str) -> Any:
        return {"request": ctx.api_call(request, lambda api: api.find_request(case, digest, mode))}

    @app.get("/v1/requests/{handle}")
    def requests_show(request: Request, handle: str) -> Any:
        return ctx.api_call(request, lambda api: api.show_request(handle))

    @app.post("/v1/requests/{handle}/approve")
    def requests_approve(request: Request, handle: str) -> Any:
        return ctx.api_call(request, lambda api: api.approve_request(handle))

    @app.post("/v1/requests/{handle}/{verb}")
    def requests_close(request: Request, handle: str, verb: str, body: CloseBody) -> Any:
        _check_verb("request", verb, ("approve", *CLOSE_VERBS), CLOSE_VERBS)
        return ctx.api_call(request, lambda api: api.close_request(verb, handle, body.reason))


def _audit_routes(app: FastAPI, ctx: _Context) -> None:
    """Reading, checking and exporting the audit log."""

    @app.get("/v1/audit/entries")
    def audit_entries(request: Request, case: str | None = None) -> Any:
        return ctx.api_call(request, lambda api: api.audit_entries(case))

    @app.get("/v1/audit/heads")
    def audit_heads(request: Request) -> Any:
        return ctx.api_call(request, lambda api: api.tree_heads())

    @app.post("/v1/audit/checkpoint")
    def audit_checkpoint(request: Request) -> Any:
        return {"note": ctx.api_call(request, lambda api: api.checkpoint())}

    @app.post("/v1/audit/verify")
    def audit_verify(request: Request) -> Any:
        return {"summary": ctx.as_user(request, lambda vault: auditor.verify_live(vault).summary())}

    @app.get("/v1/audit/bundle")
    def audit_bundle(
        request: Request,
        case: str | None = None,
        actor: list[str] = Query(default=[]),  # noqa: B008 (FastAPI's way to declare a repeated parameter)
        action: list[str] = Query(default=[]),  # noqa: B008
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> PlainTextResponse:
        where = AuditFilter(case=case, actors=tuple(actor), actions=tuple(action), since=since, until=until)

        def work(vault: ServiceVault) -> tuple[str, int]:
            with tempfile.TemporaryDirectory(prefix="ifadit-export-") as folder:
                path = Path(folder) / "bundle.jsonl"
                count = vault.export_audit(path, where if where != AuditFilter() else None)
                return path.read_text(), count

        text, count = ctx.as_user(request, work)
        return PlainTextResponse(text, media_type="application/jsonl", headers={ENTRIES_HEADER: str(count)})


def _job_routes(app: FastAPI, ctx: _Context, jobs: dict[str, JobRunner], max_job_bytes: int) -> None:
    """File-carrying jobs (a ZIP each way, ``keyvault.service.jobs``), run as the caller in a worker thread."""

    @app.post(JOBS_PATH + "{kind}")
    async def run_job(request: Request, kind: str) -> Response:
        runner = jobs.get(kind)
        if runner is None:
            raise errors.NotFound(
                f"this vault service runs no {kind!r} job",
                hint=f"it runs: {', '.join(sorted(jobs)) or 'none (started without ifadit vault serve)'}",
            )
        if ctx.state.sealed:
            raise service_errors.ServiceSealed()
        ctx.auth.user_of(_bearer(request))  # refuse a stranger before reading a large body
        body = await request.body()
        payload = await run_in_threadpool(ctx.run_job, request, runner, body, max_job_bytes)
        return Response(payload, media_type="application/zip")


def _admin_action_routes(app: FastAPI, ctx: _Context) -> None:
    """The two-person rule: admin actions listed, shown, approved, denied; destroy with a window or an
    approved action, and cancelling a scheduled destroy. The library checks who files, approves and runs."""

    @app.get("/v1/admin-actions")
    def actions_list(
        request: Request, action_state: str | None = Query(None, alias="state", max_length=16)
    ) -> Any:
        if action_state is not None and action_state not in admin_actions.STATES:
            raise ValueError(f"state must be one of {', '.join(admin_actions.STATES)}")
        return ctx.api_call(request, lambda api: api.list_admin_actions(action_state))

    @app.get("/v1/admin-actions/{handle}")
    def actions_show(request: Request, handle: str) -> Any:
        return ctx.api_call(request, lambda api: api.show_admin_action(handle))

    @app.post("/v1/admin-actions/{handle}/{verb}")
    def actions_decide(request: Request, handle: str, verb: str) -> Any:
        _check_verb("admin-action", verb, DECIDE_VERBS, DECIDE_VERBS)
        return ctx.api_call(request, lambda api: api.decide_admin_action(verb, handle))

    @app.post("/v1/keys/{handle}/destroy")
    def keys_destroy(request: Request, handle: str, body: DestroyBody) -> Any:
        window = timedelta(seconds=body.window_s)
        return ctx.api_call(
            request, lambda api: api.destroy_key(handle, body.reason, window, body.admin_action)
        )

    @app.post("/v1/keys/{handle}/cancel-destroy")
    def keys_cancel_destroy(request: Request, handle: str, body: CloseBody) -> Any:
        return ctx.api_call(request, lambda api: api.cancel_destroy(handle, body.reason))


def _audit_proof_routes(app: FastAPI, ctx: _Context) -> None:
    """Inclusion and consistency proofs (the client checks them again), and keyed digests of a SHA-256."""

    @app.post("/v1/audit/prove")
    def audit_prove(request: Request, body: ProveBody) -> Any:
        return ctx.api_call(request, lambda api: api.prove(body.seq))

    @app.get("/v1/audit/consistency")
    def audit_consistency(
        request: Request, old: int = Query(ge=1), new: int | None = Query(None, ge=1)
    ) -> Any:
        head_old, head_new, path = ctx.as_user(request, lambda vault: LocalAPI(vault).consistency(old, new))
        return {"old": encode(head_old), "new": encode(head_new), "proof": [h.hex() for h in path]}

    @app.post("/v1/audit/digest")
    def audit_digest(request: Request, body: DigestBody) -> Any:
        return {"digest": ctx.api_call(request, lambda api: api.keyed_digest(body.sha256, body.files))}
