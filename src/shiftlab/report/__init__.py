"""HTML and Markdown reports, read from a run directory alone."""

from shiftlab.report.render import build_report, write_report

__all__ = ["build_report", "write_report"]
