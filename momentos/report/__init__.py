"""Reports that lead to action: one picture per customer across the three moments.

``build_report`` turns enriched items into a self-contained ``report.html`` (printable, no
script, no network), one CSV file per table (Customer 360 matrix and totals, per-moment
indicators, how-to themes, services and groups ranked, ping-pong pairs, at-risk list,
watermelons, score/survey agreement, weekly trends), ``report.xlsx`` (the same tables, a sheet
each) and ``report.json``, for a period compared with the one before. ``report_frame`` reduces
stored rows to what the report reads, in bounded memory; ``publish_report`` attaches the page to
a ServiceNow record and/or a Jira issue.
"""

from __future__ import annotations

from momentos.report.build import ReportFiles, build_report
from momentos.report.load import report_frame

__all__ = ["ReportFiles", "build_report", "report_frame"]
