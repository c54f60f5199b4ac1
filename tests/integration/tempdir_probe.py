"""Asks tempfile for its directory at import, as torch._dynamo does when a fork server pre-imports it."""

import tempfile

AT_IMPORT = tempfile.gettempdir()


def call_tempdir() -> str:
    """The directory tempfile uses inside a sandboxed call."""
    return tempfile.gettempdir()
