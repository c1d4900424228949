"""Render a ``CaseReport`` as one self-contained HTML page: inline CSS, no script, no external resource.

Why Jinja2 with autoescape always on: every entry field (reasons, errors, user names, case ids) is
text someone typed, possibly to attack the reader's browser; the template never marks data safe,
so a ``<script>`` in a reason reaches the page as text. The page is written atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from keyvault.report.model import CaseReport

CATEGORY_LABELS = {
    "key": "Key",
    "anonymize": "Anonymize",
    "request": "Request",
    "approval": "Approval",
    "restore": "Restore",
    "audit": "Audit",
    "admin": "Admin",
    "other": "Other",
}


def render_html(report: CaseReport) -> str:
    """The page's HTML text."""
    import jinja2  # only the report needs it: `import keyvault` stays light for verification alone

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("keyvault.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(report=report, labels=CATEGORY_LABELS)


def write_html(report: CaseReport, path: str | os.PathLike[str]) -> Path:
    """Write the page to ``path`` atomically (temporary file beside it, then rename); return the path."""
    target = Path(path)
    text = render_html(report)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
