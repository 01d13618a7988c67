"""Whether the tests run in CI: there, what a developer's machine may lack (a PostgreSQL server, the compose
CLI) must be present, so a test that needs it fails instead of being skipped."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """The environment variable CI is set (scripts/test.sh sets it, as CI services do): tests must run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
