"""The GPU check script's CPU-testable parts: the dry run lists the plan, and the report files are written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("attention_bench", ROOT / "benchmarks" / "attention_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_check_dry_run_prints_versions_and_the_plan_without_a_gpu() -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "== versions" in out and "torch" in out and "triton" in out
    assert "suite h100-mha" in out and "suite h100-d64" in out
    assert "b1-h16-n16384-d128-causal-bf16" in out and "b16-h32-n1024-d64-full-bf16" in out
    assert "sdpa-cudnn" in out and "fa2.py" in out
    assert "== GPU tests" not in out  # nothing runs on a GPU in a dry run


def test_bench_script_refuses_a_missing_kernel(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--dry-run", "--kernel", "/nonexistent/kernel.py"])
    assert "does not exist" in capsys.readouterr().err


def test_bench_script_writes_json_and_markdown_named_by_date_and_gpu(bench, tmp_path: Path) -> None:
    row = {"config": "b1-h16-n16384-d128-full-bf16", "tflops": {"candidate": 390.0, "sdpa-cudnn": 600.0},
           "median_ms": {}, "iqr_ms": {}, "ratio_to_cudnn": 0.65, "baseline_errors": {}}
    report = {"date": "2030-01-02T03:04:05+00:00", "env": {"gpu": "NVIDIA H100 80GB HBM3", "driver": "580"},
              "runs": [{"suite": "h100-mha", "kernel": "fa2.py", "status": "ok", "reason": "", "score_tflops": 390.0,
                        "device": "NVIDIA H100 80GB HBM3", "geomean_ratio_to_cudnn": 0.65, "table": [row]}]}
    copies = tmp_path / "out"
    paths = bench.write(report, tmp_path / "results", copies)
    assert [p.name for p in paths] == ["2030-01-02-nvidia-h100-80gb-hbm3.json", "2030-01-02-nvidia-h100-80gb-hbm3.md"]
    assert json.loads(paths[0].read_text())["runs"][0]["table"][0]["ratio_to_cudnn"] == 0.65
    text = paths[1].read_text()
    assert "geometric mean vs cuDNN: 0.650x" in text and "| b1-h16-n16384-d128-full-bf16 | 390 | 600 | 0.650x |" in text
    assert sorted(p.name for p in copies.iterdir()) == sorted(p.name for p in paths)
