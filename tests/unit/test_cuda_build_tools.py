"""CUDA_HOME and ninja for the CUDA build: the toolkit is found behind an nvcc wrapper, ninja beside Python."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from evoagent.targets.attention import cuda_build


def _toolkit(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "bin" / "nvcc").write_text("#!/bin/sh\n")
    (root / "bin" / "nvcc").chmod(0o755)
    (root / "include" / "cuda_runtime.h").write_text("")
    return root


def _script(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_a_linked_nvcc_leads_to_its_toolkit(tmp_path: Path) -> None:
    toolkit = _toolkit(tmp_path / "cuda-13.0")
    link = tmp_path / "bin" / "nvcc"
    link.parent.mkdir()
    link.symlink_to(toolkit / "bin" / "nvcc")
    assert cuda_build.toolkit_root(str(link)) == toolkit


def test_a_wrapper_nvcc_outside_the_toolkit_is_not_taken_for_one(tmp_path: Path) -> None:
    wrapper = _script(tmp_path / "usr" / "bin" / "nvcc", "#!/bin/sh\nexec /somewhere/nvcc \"$@\"\n")
    root = cuda_build.toolkit_root(str(wrapper))
    assert root != tmp_path / "usr"
    assert root is None or ((root / "bin" / "nvcc").is_file() and (root / "include" / "cuda_runtime.h").is_file())


def test_cuda_home_is_set_from_the_toolkit_unless_the_environment_sets_it(tmp_path: Path, monkeypatch) -> None:
    toolkit = _toolkit(tmp_path / "cuda")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(cuda_build, "toolkit_root", lambda nvcc=None: toolkit)
    _script(tmp_path / "tools" / "ninja")
    monkeypatch.setenv("PATH", f"{tmp_path / 'tools'}{os.pathsep}{os.environ['PATH']}")
    assert cuda_build.ensure_build_tools() == {"CUDA_HOME": str(toolkit)}
    assert os.environ["CUDA_HOME"] == str(toolkit)
    monkeypatch.setenv("CUDA_HOME", "/opt/my-cuda")
    assert cuda_build.ensure_build_tools() == {} and os.environ["CUDA_HOME"] == "/opt/my-cuda"


def test_ninja_beside_this_python_is_put_on_path_and_its_absence_is_one_clear_error(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    monkeypatch.setenv("CUDA_HOME", "/opt/my-cuda")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "ninja", None)  # the ninja package is not installed
    venv_bin = tmp_path / "venv" / "bin"
    _script(venv_bin / "ninja")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert cuda_build.ensure_build_tools() == {"PATH": f"{venv_bin}{os.pathsep}{tmp_path / 'empty'}"}
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bare" / "python"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "bare"))
    with pytest.raises(RuntimeError, match=r"needs ninja.*evoagent\[cuda\]"):
        cuda_build.ensure_build_tools()
