"""A call's temporary files go to its own folder even when the fork server's pre-imports asked tempfile first."""

from __future__ import annotations

import os

import tempdir_probe

from evoagent.result import Status
from evoagent.sandbox import Sandbox, SandboxConfig


def test_tempfile_in_a_call_uses_the_calls_own_folder_after_a_preload_asked_for_it() -> None:
    with Sandbox(SandboxConfig(preload=("numpy", "tempdir_probe"), workers=1)) as sandbox:
        out = sandbox.call(tempdir_probe.call_tempdir)
    assert out.status is Status.OK, out.reason
    assert out.value != tempdir_probe.AT_IMPORT and os.path.basename(out.value) == "tmp", out.value
