"""`custos verify`: check an export file's signatures against a trust store; text or JSON out.

The verification itself is app/formats/oef/verify.py (sans-IO over an mmap of the file); this
module adds the command: reading trust anchors, printing, and the exit status by verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app.formats.oef.report import EXIT_CODES, EXIT_USAGE, VerificationReport
from app.formats.oef.verify import load_trust, verify_file

logger = logging.getLogger(__name__)


def run_verify_command(
    path: Path,
    trust_paths: Sequence[Path],
    as_json: bool,
    out: TextIO,
    now_ns: int | None = None,
) -> int:
    """Verify `path`, print the report (JSON with `as_json`) to `out`, return the exit status:
    0 valid-trusted, 1 valid-untrusted, 2 unsigned, 3 invalid, 4 malformed, 5 unusable input."""
    try:
        anchors = load_trust(list(trust_paths))
    except (OSError, ValueError) as exc:
        out.write(f"verify: cannot load trust anchors: {exc}\n")
        return EXIT_USAGE
    try:
        report: VerificationReport = verify_file(path, anchors, now_ns=now_ns)
    except OSError as exc:
        out.write(f"verify: cannot read {path}: {exc.strerror}\n")
        return EXIT_USAGE
    out.write(report.to_json() + "\n" if as_json else report.to_text())
    logger.info("verified %s: %s", path, report.verdict)
    return EXIT_CODES[report.verdict]


__all__ = ["EXIT_CODES", "EXIT_USAGE", "run_verify_command", "verify_file"]
