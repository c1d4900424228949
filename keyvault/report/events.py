"""Audit entries told as events a person can read: one plain-language sentence per entry, and a category.

Why: an auditor or a court reads "ivan restored 1 face (exact: the original pixels) under request
rq_…", not ``{"action":"restore","details":{"mode":"exact",…}}``. The sentences are built from the
entry's fields only; every value is data that may be attacker-chosen text (a reason, an error, a
user name), so callers must escape it when they render markup (the HTML template autoescapes).
An action this module does not know is still shown, by its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keyvault.audit import AuditEntry

# ok sentence (after the actor's name), the attempt as a gerund phrase for refusals and failures, category
_PHRASES: dict[str, tuple[str, str, str]] = {
    "vault.init": ("created the vault", "creating the vault", "admin"),
    "vault.policy": ("changed the vault's policy{policy}", "changing the vault's policy", "admin"),
    "vault.unlock": ("unlocked the vault", "unlocking the vault", "admin"),
    "user.add": ("added user {user} with the role {roles}", "adding user {user}", "admin"),
    "user.disable": ("disabled user {user}", "disabling user {user}", "admin"),
    "key.issue": ("issued key {key} for this case{purpose}", "issuing a key", "key"),
    "key.rotate": ("rotated key {key} to a new version", "rotating key {key}", "key"),
    "key.suspend": ("suspended key {key}", "suspending key {key}", "key"),
    "key.resume": ("resumed key {key}", "resuming key {key}", "key"),
    "key.revoke": ("revoked key {key}", "revoking key {key}", "key"),
    "key.destroy": ("destroyed key {key} (its material is erased)", "destroying key {key}", "key"),
    "key.use": ("used key {key}{purpose}", "using key {key}", "key"),
    "anonymize": (
        "anonymized {files} ({faces}) with the {backend} backend under key {key}{sealed}{failed}",
        "anonymizing files under key {key}",
        "anonymize",
    ),
    "restore.request": ("asked to restore faces (request {request})", "asking to restore faces", "request"),
    "restore.approve": ("approved request {request}", "approving request {request}", "approval"),
    "restore": (
        "restored {faces} ({mode}) under key {key}{under_request}",
        "restoring faces{under_request}",
        "restore",
    ),
    "audit.export": ("exported the audit log ({filter})", "exporting the audit log", "audit"),
    "audit.digest": ("computed the keyed digest of files", "computing keyed digests", "audit"),
}
MODES = {
    "exact": "exact: the original pixels",
    "model": "model restore: an investigative lead, not an identification",
}


@dataclass(frozen=True)
class Event:
    """One entry as the report shows it."""

    seq: int
    time: str  # "2026-12-07 13:26:16", UTC
    actor: str
    role: str
    action: str
    outcome: str  # ok | refused | failed
    category: str  # key, anonymize, request, approval, restore, audit, admin, other
    sentence: str  # plain language, actor first
    reason: str | None  # the reason the actor gave, when there is one
    mode: str | None  # exact | model, for restores


def _plural(count: object, noun: str) -> str:
    number = count if isinstance(count, int) and not isinstance(count, bool) else "?"
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _fields(entry: AuditEntry) -> dict[str, str]:
    details: Mapping[str, Any] = entry.details
    key = entry.key_handle or "-"
    if entry.key_version is not None:
        key += f" v{entry.key_version}"
    request = details.get("request")
    failed = details.get("failed")
    policy = details.get("require_approval")
    where = details.get("filter")
    return {
        "key": key,
        "user": str(details.get("user", "?")),
        "roles": str(details.get("roles", "?")),
        "purpose": f" (purpose: {details['purpose']})" if details.get("purpose") else "",
        "files": _plural(details.get("files"), "file"),
        "faces": _plural(details.get("faces"), "face"),
        "backend": str(details.get("backend", "?")),
        "sealed": "; originals sealed for an exact restore" if details.get("seal_original") else "",
        "failed": f"; {_plural(failed, 'file')} failed" if isinstance(failed, int) and failed else "",
        "request": str(request or "-"),
        "under_request": f" under request {request}" if request else "",
        "mode": MODES.get(str(details.get("mode")), str(details.get("mode", "mode not recorded"))),
        "policy": "" if policy is None else f" (restores need an approval: {'yes' if policy else 'no'})",
        "filter": _filter_words(where),
    }


def _filter_words(where: object) -> str:
    if not isinstance(where, dict):
        return "whole log"
    parts = [f"{name} {value}" for name, value in sorted(where.items()) if value not in (None, [], "")]
    return "excerpt: " + ", ".join(parts) if parts else "whole log"


def sentence(entry: AuditEntry) -> str:
    """What happened, in one sentence that starts with the actor's name."""
    actor = entry.actor or "the system"
    ok, attempt, _ = _PHRASES.get(entry.action, (f"did {entry.action}", entry.action, "other"))
    fields = _fields(entry)
    error = str(entry.details.get("error", "no error recorded"))
    if entry.outcome == "ok":
        return f"{actor} {ok.format_map(fields)}."
    verdict = "refused" if entry.outcome == "refused" else "it failed"
    return f"{actor} tried {attempt.format_map(fields)}; {verdict}: {error}"


def category(entry: AuditEntry) -> str:
    """The entry's kind for the report's colours and counts (``other`` for actions not listed here)."""
    return _PHRASES.get(entry.action, ("", "", "other"))[2]


def event(entry: AuditEntry, when: Callable[[str], str]) -> Event:
    """The report's view of ``entry``; ``when`` formats its canonical time."""
    mode = entry.details.get("mode") if entry.action == "restore" else None
    return Event(
        seq=entry.seq,
        time=when(entry.time),
        actor=entry.actor or "-",
        role=entry.role or "-",
        action=entry.action,
        outcome=entry.outcome,
        category=category(entry),
        sentence=sentence(entry),
        reason=entry.reason,
        mode=str(mode) if mode else None,
    )
