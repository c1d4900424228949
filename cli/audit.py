"""`ifadit audit show|export|verify|prove|consistency|digest|checkpoint|witness`: read, export, anchor and check the log."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ifadit.media.digests import file_sha256, list_digest
from ifadit_cli import audit_service
from ifadit_cli.options import VaultArgs, emit, file_option, json_option, table, usage_errors, vault_options
from keyvault import (
    AuditEntry,
    AuditFilter,
    AuditVerificationError,
    InclusionProof,
    TreeHead,
    auditor,
    display_url,
    format_public_key,
    load_public_key,
    note,
    verify_bundle,
    verify_inclusion_proof,
    witness,
)
from keyvault import checkpoint as checkpoints
from keyvault import report as reports
from keyvault.anchor import check_bundle_since

ENTRY_COLUMNS = ("SEQ", "TIME (UTC)", "ACTOR", "ROLE", "ACTION", "OUTCOME", "KEY", "CASE", "REASON")
HEAD_COLUMNS = ("SIZE", "TIME (UTC)", "ROOT")
_WHEN = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"])


def _entry_row(entry: AuditEntry) -> tuple[str, ...]:
    key = entry.key_handle or "-"
    if entry.key_version is not None:
        key += f" v{entry.key_version}"
    return (
        str(entry.seq),
        entry.time[:19].replace("T", " "),
        entry.actor or "-",
        entry.role or "-",
        entry.action,
        entry.outcome,
        key,
        entry.case_id or "-",
        entry.reason or "",
    )


def _head_row(head: TreeHead) -> tuple[str, ...]:
    return (str(head.size), head.time[:19].replace("T", " "), head.root)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --case, --actor, --action, --since-time and --until; the command receives ``where`` (an AuditFilter)."""

    @click.option(
        "--case", "case_id", default=None, show_default="all cases", help="Only entries of this case."
    )
    @click.option(
        "--actor",
        "actors",
        multiple=True,
        metavar="USER",
        help="Only entries by this user (repeatable: any of them).  [default: all users]",
    )
    @click.option(
        "--action",
        "actions",
        multiple=True,
        metavar="ACTION",
        help="Only this action; a group name selects its members too: `key` is key.issue, key.revoke, … "
        "(repeatable: any of them).  [default: all actions]",
    )
    @click.option(
        "--since-time",
        type=_WHEN,
        metavar="TIME",
        default=None,
        show_default="the first entry",
        help="Only entries at or after this UTC time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS).",
    )
    @click.option(
        "--until",
        type=_WHEN,
        metavar="TIME",
        default=None,
        show_default="the newest entry",
        help="Only entries before this UTC time (exclusive; a date means its midnight).",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        case_id: str | None,
        actors: tuple[str, ...],
        actions: tuple[str, ...],
        since_time: datetime | None,
        until: datetime | None,
        **kwargs: Any,
    ) -> Any:
        with usage_errors():
            where = AuditFilter(case_id, actors, actions, _utc(since_time), _utc(until))
        return command(*args, where=where, **kwargs)

    return wrapper


@click.group("audit")
def audit_group() -> None:
    """Read, export and verify the hash-chained, Merkle-signed audit log.

    \b
    Example:
      ifadit audit export -o case.audit.jsonl && ifadit audit verify case.audit.jsonl
    """


@audit_group.command("show")
@vault_options
@filter_options
@click.option(
    "--heads",
    is_flag=True,
    default=False,
    show_default=True,
    help="List the signed tree heads instead of the entries.",
)
@json_option
def audit_show(vault_args: VaultArgs, where: AuditFilter, heads: bool, as_json: bool) -> None:
    """Print audit entries (or signed tree heads), oldest first, one row each under a header (auditor or admin).

    \b
    Example:
      ifadit audit show --case C-17 --action restore --since-time 2026-12-01
    """
    if heads:
        found_heads = audit_service.tree_heads(vault_args) if vault_args.remote else _local_heads(vault_args)
        emit(found_heads, as_json, lambda hs: table(HEAD_COLUMNS, [_head_row(h) for h in hs]))
        return
    found = (
        audit_service.entries(vault_args, where) if vault_args.remote else _local_entries(vault_args, where)
    )
    emit(
        [e.to_dict() for e in found] if as_json else found,
        as_json,
        lambda es: table(ENTRY_COLUMNS, [_entry_row(e) for e in es]),
    )


def _local_heads(vault_args: VaultArgs) -> list[TreeHead]:
    with vault_args.open() as vault:
        return auditor.tree_heads(vault)


def _local_entries(vault_args: VaultArgs, where: AuditFilter) -> list[AuditEntry]:
    with vault_args.open() as vault:
        return auditor.entries(vault, where=where)


@audit_group.command("export")
@vault_options
@filter_options
@file_option(
    "-o",
    "--output",
    required=True,
    help="Bundle file to write (JSON Lines: header, entries, signed tree heads).",
)
@file_option(
    "--public-key-out",
    default=None,
    show_default="not written",
    help="Also write the vault's audit public key (base64) to this file.",
)
def audit_export(
    vault_args: VaultArgs, where: AuditFilter, output: Path, public_key_out: Path | None
) -> None:
    """Export the log with its signed tree heads for offline verification (auditor or admin).

    With a filter (--case, --actor, --action, --since-time, --until) it writes an excerpt: the
    selected entries in full and every other entry as its hashes only, so the reader learns nothing
    of other cases yet `audit verify` (and --since) checks the excerpt against the vault's signed
    tree heads as it checks a whole log. An excerpt proves that each shown entry is unaltered and in
    its place; that no matching entry hides behind a hash rests on the vault (compare with a whole
    export when in doubt).

    \b
    Example:
      ifadit audit export --case C-17 -o C-17.audit.jsonl --public-key-out lab.pub
    """
    excerpt = where != AuditFilter()
    with vault_args.client() if vault_args.remote else vault_args.open() as vault:
        count = vault.export_audit(output, where if excerpt else None)
        if public_key_out is not None:
            public_key_out.write_text(format_public_key(vault.public_key))
    if excerpt:
        click.echo(
            f"wrote an excerpt showing {count} entries ({where.describe()}), the others as hashes, to {output}"
        )
    else:
        click.echo(f"wrote {count} entries to {output}")


@audit_group.command("verify")
@vault_options
@click.argument("bundle", required=False, type=click.Path(dir_okay=False, path_type=Path))
@file_option(
    "--public-key",
    default=None,
    show_default="the key inside the bundle",
    help="Pinned audit public key (from `audit export --public-key-out`); verification fails on another.",
)
@file_option(
    "--proof",
    default=None,
    show_default="none",
    help="Check an inclusion proof from `audit prove` instead of a bundle (needs --public-key).",
)
@click.option(
    "--strict",
    is_flag=True,
    default=False,
    show_default=True,
    help="Also re-validate the canonical form of every signed entry (about 10x slower; tamper detection "
    "is the same, since signed entries are authenticated byte for byte by the signed tree heads).",
)
@file_option(
    "--since",
    default=None,
    show_default="none",
    help="A checkpoint you kept (`audit checkpoint -o`, a witness's cosigned note, or the vault's checkpoint "
    "file): the log must extend it, which catches entries deleted together with their tree heads.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="With --since: a witness verifier key (`audit witness keygen`) that must have cosigned the newest "
    "kept checkpoint (repeatable).  [default: none]",
)
@json_option
def audit_verify(
    vault_args: VaultArgs,
    bundle: Path | None,
    public_key: Path | None,
    proof: Path | None,
    strict: bool,
    since: Path | None,
    witness_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Verify a bundle offline (or the live vault when no BUNDLE is given); exit 4 naming the first bad entry.

    The live check (no BUNDLE, `--vault`) also compares the database's index columns (case_id, ...)
    with each entry. With --since, the log must extend the checkpoint you kept.

    \b
    Example:
      ifadit audit verify lab.audit.jsonl --public-key lab.pub --since kept.checkpoint
    """
    pinned = load_public_key(public_key) if public_key is not None else None
    kept = checkpoints.read_all(since) if since is not None else []
    if witness_keys and since is None:
        raise click.UsageError("--witness needs --since")
    if proof is not None and since is not None:
        raise click.UsageError("--since checks a bundle or the live vault, not an inclusion proof")
    witnesses = [note.Verifier.decode(key) for key in witness_keys]
    if proof is not None:
        if pinned is None:
            raise click.UsageError("--proof needs --public-key")
        try:
            parsed = InclusionProof.from_dict(json.loads(proof.read_text()))
        except (OSError, ValueError) as exc:
            raise AuditVerificationError(f"{proof}: not a readable inclusion proof ({exc})") from None
        entry = verify_inclusion_proof(parsed, pinned)
        click.echo(f"entry {entry.seq} is included in the signed tree head of size {parsed.head.size}")
        return
    if bundle is not None:
        report = verify_bundle(bundle, pinned, strict=strict)
        if kept:
            report = check_bundle_since(bundle, report, kept, log_key=pinned, witnesses=witnesses)
    elif vault_args.remote:  # through the vault service (cli/audit_service.py)
        report = audit_service.verify_live(vault_args, pinned, kept, witnesses)
    else:
        with vault_args.open() as vault:
            report = auditor.verify_live(vault, pinned, since=kept, witnesses=witnesses)
    emit(report, as_json, lambda r: r.summary())


@audit_group.command("report")
@vault_options
@click.option("--case", "case_id", required=True, help="The case to report on.")
@file_option(
    "-o",
    "--output",
    required=True,
    help="HTML file to write (one self-contained page: inline CSS, no script, nothing fetched).",
)
@file_option(
    "--bundle",
    default=None,
    show_default="the live vault (--vault)",
    help="Work offline from an exported bundle or case excerpt (`audit export --case`), as an auditor holds it.",
)
@file_option(
    "--public-key",
    default=None,
    show_default="the key inside the bundle",
    help="With --bundle: the pinned audit public key (`audit export --public-key-out`).",
)
@file_option(
    "--since",
    default=None,
    show_default="none",
    help="A checkpoint you kept (`audit checkpoint -o`): the page says whether the log extends it.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="With --since: a witness verifier key that must have cosigned the newest kept checkpoint "
    "(repeatable).  [default: none]",
)
def audit_report(
    vault_args: VaultArgs,
    case_id: str,
    output: Path,
    bundle: Path | None,
    public_key: Path | None,
    since: Path | None,
    witness_keys: tuple[str, ...],
) -> None:
    """Write a case's audit report for people (auditors, courts) as one HTML page; exit 4 when it shows a fault.

    The page opens with the verification result (intact, or the located fault, and the kept
    checkpoint it was proven against), then the case's timeline in plain sentences (keys, anonymize
    runs, restore requests, approvals, restores, refusals, failures), then who did what under which
    role. It shows no pictures. From the live vault it exports the case's excerpt first (audited).

    \b
    Example:
      ifadit audit report --case C-17 --bundle C-17.audit.jsonl --public-key lab.pub -o C-17.html
    """
    if witness_keys and since is None:
        raise click.UsageError("--witness needs --since")
    if public_key is not None and bundle is None:
        raise click.UsageError("--public-key pins the key of a --bundle; the live vault uses its own")
    anchors = reports.Anchors(
        notes=checkpoints.read_all(since) if since is not None else [],
        file_name=since.name if since is not None else None,
        witnesses=[note.Verifier.decode(key) for key in witness_keys],
    )
    if bundle is not None:
        pinned = load_public_key(public_key) if public_key is not None else None
        report = reports.build_from_bundle(bundle, case_id, public_key=pinned, anchors=anchors)
    elif vault_args.remote:  # the excerpt exported through the service (audited there)
        with vault_args.client() as client:
            report = reports.build_from_vault(
                client, client.vault_id, case_id, display_name=client.url, anchors=anchors
            )
    else:
        with vault_args.open() as vault:
            report = reports.build_from_vault(
                vault, vault.id, case_id, display_name=display_url(vault.url), anchors=anchors
            )
    reports.write_html(report, output)
    verdict = report.verification
    if not verdict.intact:
        raise AuditVerificationError(f"{verdict.fault}; the report {output} was written and shows the fault")
    if all(e.category == "audit" for e in report.events):  # a live report's own export names the case
        click.echo(f"warning: the log holds no action on case {case_id!r}: check the case name", err=True)
    click.echo(f"wrote the report of case {case_id} ({len(report.events)} entries, log verified) to {output}")


@audit_group.command("prove")
@vault_options
@click.argument("seq", type=click.IntRange(min=1))
@file_option(
    "-o",
    "--output",
    default=None,
    show_default="stdout",
    help="Write the proof JSON to this file.",
)
def audit_prove(vault_args: VaultArgs, seq: int, output: Path | None) -> None:
    """Print an inclusion proof of entry SEQ under a signed tree head (JSON; check it with `audit verify --proof`).

    \b
    Example:
      ifadit audit prove 41 -o entry41.proof.json
    """
    with vault_args.api() as vault:
        proof = vault.prove(seq)
    text = json.dumps(proof.to_dict(), indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n")
        click.echo(f"wrote the proof of entry {seq} to {output}")


@audit_group.command("consistency")
@vault_options
@click.argument("old_size", type=click.IntRange(min=1))
@click.argument("new_size", type=click.IntRange(min=1), required=False)
@json_option
def audit_consistency(vault_args: VaultArgs, old_size: int, new_size: int | None, as_json: bool) -> None:
    """Check that the signed tree head of NEW_SIZE (default: newest) extends the one of OLD_SIZE.

    \b
    Example:
      ifadit audit consistency 120 && ifadit audit show --heads
    """
    with vault_args.api() as vault:
        old, new, path = vault.consistency(old_size, new_size)
    result = {"old": old, "new": new, "proof": [h.hex() for h in path]}
    emit(
        result,
        as_json,
        lambda r: (
            f"tree head of size {r['new'].size} extends the one of size {r['old'].size} "
            f"(consistency proof of {len(r['proof'])} hashes verified)"
        ),
    )


@audit_group.command("digest")
@vault_options
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def audit_digest(vault_args: VaultArgs, files: tuple[Path, ...]) -> None:
    """Print the keyed digest (hmac-sha256:...) audit entries record for FILES, in the run's order (any role).

    Entries name originals only by this vault-keyed HMAC, so a bundle reader cannot confirm a guessed
    original; a vault user holding the files recomputes it here to match an anonymize run's `inputs` or a
    restore's `output`. The check is audited. The files are hashed here: a vault service receives only
    their SHA-256, never their content.

    \b
    Example:
      ifadit audit digest evidence/in.png
    """
    sha256s = [file_sha256(path) for path in files]
    with vault_args.api() as vault, usage_errors():
        click.echo(vault.keyed_digest(list_digest(sha256s), len(sha256s)))


@audit_group.command("checkpoint")
@vault_options
@file_option(
    "-o",
    "--output",
    default=None,
    show_default="stdout only",
    help="Also write the note to this file (0600): keep it for `audit verify --since` or a witness.",
)
@click.option(
    "--verifier-key",
    is_flag=True,
    default=False,
    show_default=True,
    help="Print the vault's checkpoint verifier key instead (what a witness pins with --log-key).",
)
def audit_checkpoint(vault_args: VaultArgs, output: Path | None, verifier_key: bool) -> None:
    """Print the newest checkpoint (C2SP signed note: origin, size, root, vault signature; auditor or admin).

    Every signed tree head is also appended to the checkpoint file outside the database
    (IFADIT_CHECKPOINTS, default `<vault file>.checkpoints`).

    \b
    Example:
      ifadit audit checkpoint -o kept.checkpoint && ifadit audit export -o lab.audit.jsonl
    """
    if vault_args.remote:  # through the vault service (cli/audit_service.py)
        text = audit_service.checkpoint(vault_args, verifier_key)
    else:
        with vault_args.open() as vault:
            text = vault.checkpoint_verifier() + "\n" if verifier_key else auditor.checkpoint(vault)
    if output is not None:
        checkpoints.write_private(output, text, overwrite=True)
    click.echo(text, nl=False)


@audit_group.group("witness")
def witness_group() -> None:
    """An auditor-held key that cosigns checkpoints only when they extend the last one it cosigned.

    \b
    Example:
      ifadit audit witness keygen -o w1.key --name lab.example/w1
    """


@witness_group.command("keygen")
@file_option(
    "-o",
    "--output",
    required=True,
    help="Private key file to create (0600; refuses to overwrite one).",
)
@click.option(
    "--name",
    required=True,
    help="Witness name, a schema-less URL without spaces or '+' (e.g. lab.example/w1).",
)
def witness_keygen(output: Path, name: str) -> None:
    """Create a witness Ed25519 key; print its verifier key (auditors pin it with `audit verify --witness`).

    \b
    Example:
      ifadit audit witness keygen -o ~/.ifadit/w1.key --name lab.example/w1 > w1.vkey
    """
    try:
        verifier = witness.keygen(output, note.check_name(name))
    except (ValueError, FileExistsError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(verifier.encode())


@witness_group.command("cosign")
@click.argument("checkpoint_file", metavar="CHECKPOINT", type=click.Path(dir_okay=False, path_type=Path))
@file_option(
    "--bundle",
    required=True,
    help="Exported bundle holding at least the checkpoint's entries (the consistency proof is computed from it).",
)
@file_option(
    "--key",
    "key_file",
    required=True,
    help="Witness key file.",
)
@file_option(
    "--state",
    required=True,
    help="Witness state file (created 0600 on first use; holds the last cosigned checkpoint).",
)
@click.option(
    "--log-key",
    metavar="VKEY",
    default=None,
    show_default="the key pinned in --state",
    help="The vault's checkpoint verifier key (`audit checkpoint --verifier-key`); needed on first use.",
)
@file_option(
    "-o",
    "--output",
    default=None,
    show_default="stdout only",
    help="Also write the cosigned checkpoint to this file.",
)
def witness_cosign(
    checkpoint_file: Path, bundle: Path, key_file: Path, state: Path, log_key: str | None, output: Path | None
) -> None:
    """Cosign CHECKPOINT after checking a consistency proof from the last checkpoint this witness cosigned.

    Refuses (exit 4) a checkpoint that is smaller than, or inconsistent with, the last one.

    \b
    Example:
      ifadit audit witness cosign kept.checkpoint --bundle lab.audit.jsonl --key w1.key --state w1.state
    """
    pinned = note.Verifier.decode(log_key) if log_key else None
    texts = checkpoints.read_all(checkpoint_file)
    cosigned = witness.cosign(state, key_file, texts[-1], bundle, now=int(time.time()), log_key=pinned)
    text = cosigned.encode()
    if output is not None:
        checkpoints.write_private(output, text, overwrite=True)
    click.echo(text, nl=False)


def register(group: click.Group) -> None:
    """Add the audit group to the root command."""
    group.add_command(audit_group)
