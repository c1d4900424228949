"""What a restore is asked and what it answers, and the planning a workstation does on its own.

`RestoreOptions` (what to restore and why), `RestoreReport` and `CaseReport` (what a restore wrote),
`plan_restore` (inputs to outputs, existing outputs refused), `request_files` and `request_key` (what a
request filed through the vault service lists). No image, model or database code: a restore sent to the vault service
plans, files and publishes with these alone (`ifadit.pipeline.remote`), and starts in a fraction of a
second; `ifadit.pipeline.restore` runs them on a local vault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ifadit.errors import InputError
from ifadit.media.digests import file_sha256
from ifadit.media.files import DEFAULT_MAX_PIXELS
from ifadit.media.manifest import read_manifest
from ifadit.pipeline.inputs import Item, plan_items
from keyvault import ApprovalPending, RequestInfo
from keyvault.records import RequestFile

if TYPE_CHECKING:
    from ifadit.pipeline.restore_label import Box

REPORT_SUFFIX = ".restore.json"
# the options a workstation sends with a restore job (`force` stays here: publishing is the workstation's)
RESTORE_FIELDS = ("case", "reason", "key", "exact", "backend", "detector", "mask_scale", "max_pixels")
Mode = Literal["exact", "model"]


@dataclass(frozen=True)
class RestoreOptions:
    """What to restore and why; `backend` is used only for a copy without manifest."""

    case: str
    reason: str
    key: str | None = None  # key handle to try when the input carries no manifest
    exact: bool = False  # open the sealed originals instead of running the backend backwards
    backend: str = "ifadit"  # reversible backend for a copy without manifest
    detector: str = "hog"
    mask_scale: float | None = None  # None: the manifest's, else the backend's default (`restore_mask_scale`)
    max_pixels: int = DEFAULT_MAX_PIXELS
    force: bool = False  # overwrite outputs (and their reports) that already exist

    @property
    def mode(self) -> Mode:
        """ "exact" (open the sealed originals) or "model" (run the backend backwards)."""
        return "exact" if self.exact else "model"

    def check(self) -> None:
        """Raise `ValueError` for a missing case or reason."""
        if not self.case.strip() or not self.reason.strip():
            raise ValueError("a restore needs a case id (--case) and a reason (--reason)")


class RequestPending(ApprovalPending):
    """The batch's request still awaits its quorum of approvals (exit 3); `request` is the request."""

    def __init__(self, request: RequestInfo) -> None:
        counted = f"({request.approvals_counted} of {request.approvals_required})"
        lapsed = request.state == "approved"  # its approvals expired, or no longer count
        super().__init__(
            f"the approvals of request {request.handle} expired or no longer count {counted}"
            if lapsed
            else f"request {request.handle} awaits approval {counted}",
            hint=f"an approver runs `ifadit requests approve {request.handle}`",
        )
        self.request = request


@dataclass(frozen=True)
class RestoreReport:
    """The restoration report of one output, written next to it."""

    input: str
    output: str
    mode: Mode
    case_id: str
    reason: str
    input_sha256: str
    output_sha256: str
    key_handle: str
    key_version: int
    backend: str
    model_id: str | None
    model_sha256: str | None
    faces_listed: int  # faces the manifest lists (detected faces without manifest)
    faces_restored: int
    audit_seq: int  # this restore's audit entry (one per batch)
    anonymize_audit_seq: int | None  # the anonymize run's entry, from the manifest
    request: str | None
    approvals: list[dict[str, Any]]
    notice: str | None = None  # MODEL_NOTICE on a model restore: a lead, not an identification
    label_box: Box | None = None  # where the corner label was drawn (a video's: its last frame's)
    measured: dict[str, Any] | None = None  # the model card's held-out rates (`measured_rates`)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class CaseReport:
    """What one batch restored: one report per file, under one request and one audit entry."""

    mode: Mode
    case_id: str
    request: str | None
    audit_seq: int
    files: list[RestoreReport]
    approvals: list[dict[str, Any]]  # the request's approvals, as each file's report holds them

    @property
    def faces_restored(self) -> int:
        return sum(report.faces_restored for report in self.files)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "faces_restored": self.faces_restored}


OnFile = Callable[[RestoreReport], None]


def report_path(output: Path) -> Path:
    """Where the restoration report of `output` is written."""
    return output.with_name(output.name + REPORT_SUFFIX)


def plan_restore(sources: Sequence[Path], output: Path, *, force: bool) -> list[Item]:
    """Step 1: one item per input file; refuse (before anything is written) outputs that exist, unless `force`."""
    items = plan_items([Path(source) for source in sources], Path(output), lossless_video=False)
    if not items:
        raise InputError(f"no image or video found in {', '.join(str(s) for s in sources)}")
    existing = [item.target for item in items if item.target.exists() or report_path(item.target).exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InputError(
            f"{existing[0]} already exists{more}: nothing was restored",
            hint="pass --force to overwrite, or choose another -o",
        )
    return items


def request_files(sources: Sequence[Path], output: Path, options: RestoreOptions) -> list[RequestFile]:
    """What a request through the vault service lists, computed here without any vault: every file's name
    and SHA-256. The files themselves are checked when the restore runs, as on a local vault."""
    options.check()
    items = plan_restore(sources, output, force=True)
    for item in items:
        if not item.source.is_file():
            raise InputError(f"{item.source}: no such file")
    return [RequestFile(name=str(item.source), sha256=file_sha256(item.source)) for item in items]


def request_key(files: Sequence[RequestFile], options: RestoreOptions) -> str | None:
    """The key a new request names: `--key`, else the one every file's manifest names (the service checks
    that it is the case's); None when they name none or several. Reads the manifests, so it is asked only
    when a request is filed."""
    if options.key is not None:
        return options.key
    named = {
        manifest.key_handle if manifest else None
        for manifest in map(read_manifest, (Path(f.name) for f in files))
    }
    return named.pop() if len(named) == 1 else None
