"""The device check's CPU-testable parts: the plan, the report files (also when a run stopped part-way),
the benchmark on the interpreter with several seeds, the baselines' plumbing and the GPU-side reference."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "kernels" / "attention" / "fa2.py"
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("attention_bench")


@pytest.fixture(scope="module")
def report_module():
    return importlib.import_module("device_report")


@pytest.fixture(scope="module")
def baselines():
    return importlib.import_module("attention_baselines")


def test_device_check_dry_run_prints_versions_and_the_plan_without_a_gpu() -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "== versions" in out and "torch" in out and "triton" in out
    assert "suite h100-mha: b1-h16-n16384-d128-causal-bf16" in out
    assert "suite avo-gqa: b1-h32-kv4-n32768-d128-full-bf16" in out and "avo-gqa: b8-h16-n4096" not in out
    assert "seed kernels/attention/fa2.py" in out and "seed kernels/attention/cuda_fa2.py" in out
    assert "baselines: sdpa-cudnn, sdpa-flash, sdpa-efficient, flex, flash-attn, flash-attn-3" in out
    assert "== benchmark" not in out  # nothing is measured in a dry run


def test_device_check_refuses_an_unknown_argument() -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--gpu"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "unknown argument '--gpu'" in done.stderr


def test_bench_refuses_a_missing_seed(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--dry-run", "--seed", "/nonexistent/kernel.py"])
    assert "does not exist" in capsys.readouterr().err


def test_default_seeds_are_the_files_that_define_attention(bench, tmp_path: Path, monkeypatch) -> None:
    assert SEED.resolve() in [p.resolve() for p in bench.default_seeds()]
    (tmp_path / "a.py").write_text("def attention(q, k, v, *, causal, sm_scale):\n    return q\n")
    (tmp_path / "helpers.py").write_text("def attend(x):\n    return x\n")
    (tmp_path / "b.py").write_text("class K:\n    def attention(self):\n        pass\n")
    monkeypatch.setattr(bench, "SEED_DIR", tmp_path)
    assert [p.name for p in bench.default_seeds()] == ["a.py"]


def test_the_cuda_seed_is_a_default_seed_of_the_benchmark_but_not_of_the_triton_steps(bench) -> None:
    names = [p.name for p in bench.default_seeds()]
    assert {"fa2.py", "hopper_tma.py", "cuda_fa2.py"} <= set(names)
    assert "cuda_fa2.py" not in [p.name for p in bench.default_seeds("triton")]
    assert [p.name for p in bench.default_seeds("cuda")] == ["cuda_fa2.py"]


def test_bench_measures_every_seed_on_the_interpreter_and_records_why_one_was_not_timed(report_module,
                                                                                        tmp_path: Path) -> None:
    illegal = tmp_path / "softmax_seed.py"
    illegal.write_text("import torch\n\ndef attention(q, k, v, *, causal, sm_scale):\n"
                       "    return torch.softmax(q @ k.transpose(-1, -2) * sm_scale, -1) @ v\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "attention_bench.py"), "--out", str(out),
                           "--suite", "smoke", "--seed", str(SEED), "--seed", str(illegal), "--warmup-ms", "20"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "b1-h2-n64-d64-causal-fp16: fa2 " in done.stdout  # each row is printed as it is measured
    report = json.loads((out / "device_check.json").read_text())
    assert report["device"]["name"] == "cpu-interpreter" and report["versions"]["torch"]
    assert report["candidates"] == ["fa2", "softmax_seed"]
    assert [s["check"]["status"] for s in report["seeds"]] == ["ok", "illegal"]
    assert len(report["rows"]) == 3
    for row in report["rows"]:
        assert row["numbers"]["fa2"]["tflops"] > 0 and row["checks"]["fa2"]["ok"]
        assert row["numbers"]["fa2"]["p10_ms"] <= row["numbers"]["fa2"]["median_ms"] <= row["numbers"]["fa2"]["p90_ms"]
        assert row["checks"]["fa2"]["reference"] == "float64"
        assert row["missing"]["softmax_seed"].startswith("failed the check stage: ")
        assert set(row["missing"]) >= {"sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "flex", "flash-attn"}
    assert report_module.validate(report) == []
    text = (out / "device_check.md").read_text()
    assert "| config | fa2 | softmax_seed | sdpa-cudnn |" in text and "failed the check stage" in text


def test_bench_that_measures_no_seed_fails_and_says_why_each_row_is_missing(tmp_path: Path) -> None:
    illegal = tmp_path / "softmax_seed.py"
    illegal.write_text("import torch\n\ndef attention(q, k, v, *, causal, sm_scale):\n"
                       "    return torch.softmax(q @ k.transpose(-1, -2) * sm_scale, -1) @ v\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "attention_bench.py"), "--out", str(out),
                           "--suite", "smoke", "--seed", str(illegal)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no 'rows' (one per configuration)" in done.stdout
    report = json.loads((out / "device_check.json").read_text())
    assert report["rows"] == [] and len(report["skipped"]) == 3
    assert all(s["reason"] == "nothing to time: no implementation was prepared for it" for s in report["skipped"])


def _row(config: str, numbers: dict, missing: dict, ratio: dict | None = None) -> dict:
    return {"suite": "h100-mha", "config": config, "numbers": {n: {"tflops": t, "median_ms": 1.0, "iqr_ms": 0.02}
                                                                for n, t in numbers.items()},
            "missing": missing, "ratio_to_cudnn": ratio or {}}


def test_report_of_a_run_stopped_part_way_renders_and_names_what_is_missing(report_module, tmp_path: Path) -> None:
    report = report_module.load(tmp_path)
    report.update(device={"name": "NVIDIA H200", "driver": "580.1"}, versions={"torch": "2.11.0"},
                  candidates=["fa2"], baselines=["sdpa-cudnn", "flex"],
                  rows=[_row("b1-h16-n16384-d128-full-bf16", {"fa2": 400.0, "sdpa-cudnn": 600.0},
                             {"flex": "RuntimeError: compile failed"}, {"fa2": 0.6667, "sdpa-cudnn": 1.0}),
                        _row("b2-h16-n8192-d128-full-bf16", {"fa2": 380.0}, {})],
                  evolution={"status": "running", "trials": [{"id": 1, "operator": "seed", "status": "ok"}],
                             "before_after": [{"config": "b2-h16-n2048-d128-full-bf16", "seed": 300.0, "best": 330.0,
                                               "ratio": 1.1, "cudnn": 600.0, "best_vs_cudnn": 0.55}]},
                  profile={"status": "running"}, steps={"benchmark": {"status": "timeout", "seconds": 230}})
    report_module.save(report, tmp_path)
    problems = report_module.validate(json.loads((tmp_path / "device_check.json").read_text()))
    assert problems == ["row 'b2-h16-n8192-d128-full-bf16' has neither a number nor a reason for "
                        "['sdpa-cudnn', 'flex']"]
    text = (tmp_path / "device_check.md").read_text()
    assert "| b1-h16-n16384-d128-full-bf16 | 400.0 ±1% | 600.0 ±1% | - | 0.667x |" in text
    assert "| b2-h16-n8192-d128-full-bf16 | 380.0 ±1% | - | - | - |" in text
    assert "| b2-h16-n2048-d128-full-bf16 | 300 | 330 | 1.100x | 600 | 0.550x |" in text
    assert "| 1 | seed | ok | - | no |  |" in text
    assert "- flex: RuntimeError: compile failed" in text and "| benchmark | timeout | 230 |" in text
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert saved["summary"]["geomean_tflops"]["fa2"] == pytest.approx(math.sqrt(400 * 380), rel=1e-3)
    assert saved["summary"]["geomean_ratio_to_cudnn"]["fa2"] == pytest.approx(0.6667)


def test_saved_results_are_named_by_gpu_and_date_and_refused_when_incomplete(report_module, tmp_path: Path) -> None:
    report = {"date": "2030-01-02T03:04:05+00:00", "device": {"name": "NVIDIA H200"}, "versions": {"torch": "x"},
              "candidates": ["fa2"], "baselines": ["sdpa-cudnn"],
              "rows": [_row("c", {"fa2": 1.0, "sdpa-cudnn": 2.0}, {})]}
    path = tmp_path / "device_check.json"
    path.write_text(json.dumps(report))
    written = report_module.save_results(path, tmp_path / "results")
    assert [p.name for p in written] == ["nvidia-h200-2030-01-02.json", "nvidia-h200-2030-01-02.md"]
    path.write_text(json.dumps(report | {"rows": []}))
    with pytest.raises(SystemExit, match="no 'rows'"):
        report_module.save_results(path, tmp_path / "results")


def test_a_gpu_report_is_useful_only_with_a_row_holding_a_seed_and_cudnn(report_module, tmp_path: Path) -> None:
    report = {"device": {"name": "NVIDIA H100 80GB HBM3"}, "versions": {"torch": "2.11.0"},
              "candidates": ["fa2", "cuda_fa2"], "baselines": ["sdpa-cudnn", "sdpa-flash"],
              "rows": [_row("a", {"fa2": 300.0, "sdpa-flash": 350.0}, {"cuda_fa2": "x", "sdpa-cudnn": "refused"}),
                       _row("b", {"sdpa-cudnn": 500.0, "sdpa-flash": 350.0}, {"fa2": "x", "cuda_fa2": "y"})]}
    assert report_module.validate(report) == ["no row has both a seed's number and cuDNN's: nothing to compare"]
    report["rows"].append(_row("c", {"fa2": 300.0, "cuda_fa2": 250.0, "sdpa-cudnn": 500.0}, {"sdpa-flash": "z"}))
    assert report_module.validate(report) == []
    assert report_module.usefulness(report)[1] == "useful: 1 rows, 3 implementations"
    path = tmp_path / "device_check.json"
    path.write_text(json.dumps(report))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_report.py"), "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("complete; useful: 1 rows, 3 implementations")


def test_a_cpu_report_fails_unless_every_row_has_a_seed_number(report_module, tmp_path: Path) -> None:
    report = {"device": {"name": "cpu-interpreter"}, "versions": {"torch": "2.11.0"}, "candidates": ["fa2"],
              "baselines": ["sdpa-cudnn"],
              "rows": [_row("a", {"fa2": 1e-5}, {"sdpa-cudnn": "needs a CUDA device"}),
                       _row("b", {}, {"fa2": "InterpreterError: ...", "sdpa-cudnn": "needs a CUDA device"})]}
    assert report_module.validate(report) == ["row 'b' has no seed's number"]
    path = tmp_path / "device_check.json"
    path.write_text(json.dumps(report))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_report.py"), "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.splitlines() == ["row 'b' has no seed's number",
                                                                 "useful: 1 rows, 1 implementations"]


def test_reference_is_fp64_for_small_shapes_and_chunking_does_not_change_it(bench, monkeypatch) -> None:
    import numpy as np
    import torch

    from evoagent.targets.attention.reference import reference_attention
    from evoagent.targets.attention.suites import make_config

    config = make_config(2, 4, 2, 37, 16, True, "float32")
    q, k, v = bench.make_inputs(config, "cpu")
    want = reference_attention(q.numpy(), k.numpy(), v.numpy(), causal=True, sm_scale=0.3)
    whole = bench.reference(q, k, v, causal=True, sm_scale=0.3)
    assert whole.dtype == torch.float64 and np.allclose(whole.numpy(), want, atol=1e-12)
    monkeypatch.setattr(bench, "_FP64_SCORE_ELEMENTS", 0)
    monkeypatch.setattr(bench, "_CHUNK_SCORE_ELEMENTS", 2 * 4 * 37 * 5)  # query chunks of 5 rows
    chunked = bench.reference(q, k, v, causal=True, sm_scale=0.3)
    assert chunked.dtype == torch.float32 and np.allclose(chunked.numpy(), want, atol=1e-5)
    assert bench.compare(chunked, whole, "float16")["ok"]
    bad = chunked.clone()
    bad[1, 3, 36] += 0.5
    verdict = bench.compare(bad, whole, "float16")
    assert not verdict["ok"] and "outside tolerance" in verdict["reason"]


def test_timing_statistics_are_median_percentiles_and_tflops(bench) -> None:
    numbers = bench.stats([float(x) for x in range(1, 22)], flops=11e9)  # 1..21 ms
    assert numbers["median_ms"] == 11 and numbers["p10_ms"] == 3 and numbers["p90_ms"] == 19
    assert numbers["iqr_ms"] == 10 and numbers["min_ms"] == 1 and numbers["reps"] == 21
    assert numbers["tflops"] == pytest.approx(1.0)  # 11 GFLOP in 11 ms


def test_baselines_say_why_they_cannot_run_here(baselines) -> None:
    import torch

    q = torch.zeros(1, 2, 8, 16)
    for name in ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient"):
        with pytest.raises(baselines.Missing, match="needs a CUDA device"):
            baselines.build(name, q, q, q, causal=False, sm_scale=0.25)
    with pytest.raises(baselines.Missing, match="timed on GPUs only"):
        baselines.build("flex", q, q, q, causal=False, sm_scale=0.25)
    for name, module in (("flash-attn", "flash_attn"), ("flash-attn-3", "flash_attn_interface")):
        if importlib.util.find_spec(module) is None:
            with pytest.raises(baselines.Missing, match="not importable: ModuleNotFoundError"):
                baselines.build(name, q, q, q, causal=True, sm_scale=0.25)
    with pytest.raises(ValueError, match="unknown baseline 'cudnn'"):
        baselines.build("cudnn", q, q, q, causal=True, sm_scale=0.25)


@pytest.mark.parametrize("causal", [False, True])
def test_flex_baseline_computes_gqa_attention_with_the_causal_block_mask(bench, baselines, causal) -> None:
    from evoagent.targets.attention.suites import make_config

    config = make_config(1, 4, 2, 160, 16, causal, "float32")  # GQA 4/2, N not a multiple of Flex's 128 blocks
    q, k, v = bench.make_inputs(config, "cpu")
    flex = baselines.build("flex", q, k, v, causal=causal, sm_scale=0.25, compile_flex=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uncompiled Flex warns that it is slow
        out = flex()
    want = bench.reference(q, k, v, causal=causal, sm_scale=0.25)
    assert bench.compare(out, want, "float32")["ok"]


def test_a_confined_profile_stage_may_read_nsight_computes_folder(tmp_path: Path, monkeypatch) -> None:
    from evoagent.targets.attention.evaluator import _ncu_install

    install = tmp_path / "opt" / "nsight-compute" / "2025.3.1"
    install.mkdir(parents=True)
    (install / "ncu").write_text("#!/bin/sh\n")
    (install / "ncu").chmod(0o755)
    bin_dir = tmp_path / "cuda" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ncu").symlink_to(install / "ncu")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert _ncu_install() == (str(bin_dir), str(install.resolve()))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert _ncu_install() == ()


def _fake_ncu(folder: Path, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ncu").write_text("#!/bin/sh\n" + body)
    (folder / "ncu").chmod(0o755)


def test_trusted_ncu_reads_the_csv_and_stops_a_hung_ncu_with_its_own_timeout(tmp_path: Path, monkeypatch) -> None:
    steps = importlib.import_module("device_steps")
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert steps.trusted_ncu(SEED, "h100-mha", "b1-h16-n16384-d128-full-bf16", 5.0) == {"available": False}
    _fake_ncu(tmp_path / "ok", 'echo "==PROF== Connected"\necho \'"ID","Kernel Name","Metric Value"\'\n'
                               'echo \'"0","_attention_forward","71.2"\'\n')
    monkeypatch.setenv("PATH", str(tmp_path / "ok"))
    done = steps.trusted_ncu(SEED, "h100-mha", "b1-h16-n16384-d128-full-bf16", 30.0)
    assert done["returncode"] == 0 and done["csv"] == ['"ID","Kernel Name","Metric Value"',
                                                       '"0","_attention_forward","71.2"']
    _fake_ncu(tmp_path / "hung", f"{sleep} 600 &\nwait\n")  # ncu and a target that hang
    monkeypatch.setenv("PATH", str(tmp_path / "hung"))
    hung = steps.trusted_ncu(SEED, "h100-mha", "b1-h16-n16384-d128-full-bf16", 1.0)
    assert hung == {"available": True, "error": "ncu took longer than 1 s (stopped)",
                    "config": "b1-h16-n16384-d128-full-bf16"}
