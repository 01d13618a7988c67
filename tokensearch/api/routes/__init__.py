"""One router per resource of ``/api/v1`` (plus health/metrics at the top level)."""
