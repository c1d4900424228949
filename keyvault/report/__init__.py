"""The auditor's report of one case: a readable, verified timeline as a self-contained HTML page."""

from keyvault.report.model import Anchors, CaseReport, build_from_bundle, build_from_vault
from keyvault.report.render import render_html, write_html

__all__ = ["Anchors", "CaseReport", "build_from_bundle", "build_from_vault", "render_html", "write_html"]
