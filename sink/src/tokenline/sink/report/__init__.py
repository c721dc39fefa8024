"""Reports, exports and billing over the sink's database.

``tokenline report`` and ``tokenline export`` are thin click commands over these pieces:

- :mod:`.selection`: what is selected (tenants, tenant-local range, filters, grouping);
- :mod:`.queries`: the SQL, built from allow-listed fragments, and the choice between the
  ``usage_15m`` aggregate and raw ``usage_events``;
- :mod:`.run`: runs it on PostgreSQL (no server-side prepared statements);
- :mod:`.model`: exact totals and the derived averages;
- :mod:`.render`, :mod:`.export`, :mod:`.billing`: table, JSON, CSV and JSON Lines output.
"""

from tokenline.sink.report.billing import billing_spec, write_billing_csv
from tokenline.sink.report.export import write_export
from tokenline.sink.report.model import Report, ReportRow, Totals
from tokenline.sink.report.render import render
from tokenline.sink.report.run import connect, iter_events, run_report
from tokenline.sink.report.selection import DIMENSIONS, ReportSpec, Selection

__all__ = [
    "DIMENSIONS",
    "Report",
    "ReportRow",
    "ReportSpec",
    "Selection",
    "Totals",
    "billing_spec",
    "connect",
    "iter_events",
    "render",
    "run_report",
    "write_billing_csv",
    "write_export",
]
