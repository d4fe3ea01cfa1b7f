"""An auditor's export of the evidence log: the entries of a date range as CSV (for a spreadsheet) or HTML (to
read and file), each with its seq and hash so any row can be checked against the log itself.

Only entries that verify on their own are exported; the export says whether the whole log verified, so a
reader never takes a partial history for a complete one. Evidence holds no patient data (actors are IAM
identities, details are aggregates), so the export holds none either.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time
from html import escape
from typing import Any

from clinops.evidence.entry import EvidenceEntry

COLUMNS = ("seq", "at_utc", "kind", "model", "model_version", "package_arn", "actor", "reason", "details", "hash")


def in_range(entries: list[EvidenceEntry], start: date | None, end: date | None) -> list[EvidenceEntry]:
    """Entries from the start of `start` to the end of `end` (UTC days, both inclusive), in seq order."""
    low = datetime.combine(start, time.min, tzinfo=UTC) if start else None
    high = datetime.combine(end, time.max, tzinfo=UTC) if end else None
    return [
        e
        for e in sorted(entries, key=lambda e: e.seq)
        if (low is None or e.at.astimezone(UTC) >= low) and (high is None or e.at.astimezone(UTC) <= high)
    ]


def _row(entry: EvidenceEntry) -> dict[str, str]:
    return {
        "seq": str(entry.seq),
        "at_utc": entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "kind": str(entry.kind.value),
        "model": entry.model,
        "model_version": entry.model_version or "",
        "package_arn": entry.package_arn or "",
        "actor": entry.actor,
        "reason": entry.reason,
        "details": json.dumps(entry.details, sort_keys=True, ensure_ascii=False) if entry.details else "",
        "hash": entry.hash,
    }


def to_csv(entries: list[EvidenceEntry]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        # A leading = + - @ makes spreadsheets evaluate a cell: evidence text must stay text.
        writer.writerow({k: ("'" + v if v[:1] in "=+-@" else v) for k, v in _row(entry).items()})
    return buffer.getvalue()


def to_html(entries: list[EvidenceEntry], meta: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td class='{c}'>{escape(v)}</td>" for c, v in _row(e).items()) + "</tr>" for e in entries
    )
    status = "verifies" if meta["intact"] else f"DOES NOT VERIFY ({meta['problems']} problem(s))"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Evidence export: {escape(meta['location'])}</title><style>"
        "body{font:13px/1.4 system-ui,sans-serif;margin:12px 20px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
        "td.details,td.package_arn{word-break:break-all;max-width:32em}td.hash{font-family:monospace}"
        ".bad{color:#b03024;font-weight:bold}</style></head><body>"
        f"<h1>Evidence export</h1><p>log <code>{escape(meta['location'])}</code>; range "
        f"{escape(meta['range'])}; {len(entries)} of {meta['total']} entries; the whole log "
        f"<span class='{'ok' if meta['intact'] else 'bad'}'>{escape(status)}</span>; exported "
        f"{escape(meta['exported_at'])}.</p>"
        f"<table id='entries'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    )
