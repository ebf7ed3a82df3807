"""Reports that lead to action: one picture per customer across the three moments.

``build_report`` turns enriched items into ``report.html`` (self-contained, printable),
``customer_moment.csv`` (the Customer 360 matrix as data) and ``at_risk.csv`` (every item whose
experience is at risk or poor, worst first).
"""

from __future__ import annotations

from momentos.report.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
