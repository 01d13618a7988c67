"""The test suite, a package: shared helpers are imported as ``tests.<module>`` (pytest puts the repository
root on ``sys.path`` for a package's tests, so the checkout's ``tokensearch`` is the one tested)."""
