"""Nsight Compute's CSV (a recorded sample in ncu's documented format) reduced to ten numbers and the top stalls."""

from __future__ import annotations

from evoagent.targets.attention.ncu import ARGUMENTS, read_rows, summarise

HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
          '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')


def _row(launch: int, section: str, name: str, unit: str, value: str, kernel: str = "_attn_fwd") -> str:
    return (f'"{launch}","4242","python","gpu-1","{kernel}","1","7","(256, 1, 1)","(128, 16, 1)","0","9.0",'
            f'"{section}","{name}","{unit}","{value}"')


RECORDED = [
    "==PROF== Connected to process 4242 (/usr/bin/python3)",
    "==PROF== Profiling \"_attn_fwd\": 0%....50%....100% - 9 passes",
    HEADER,
    *[_row(i, "GPU Speed Of Light Throughput", "Compute (SM) Throughput", "%", v) for i, v in ((0, "71.5"), (1, "72.5"))],
    _row(0, "GPU Speed Of Light Throughput", "Memory Throughput", "%", "38.20"),
    _row(0, "GPU Speed Of Light Throughput", "DRAM Throughput", "%", "12.04"),
    _row(0, "GPU Speed Of Light Throughput", "Duration", "msecond", "1.25"),
    _row(0, "Compute Workload Analysis", "Issue Slots Busy", "%", "41.30"),
    _row(0, "Scheduler Statistics", "Eligible Warps Per Scheduler", "warp", "0.85"),
    _row(0, "Scheduler Statistics", "No Eligible", "%", "58.70"),
    _row(0, "Occupancy", "Achieved Occupancy", "%", "12.40"),
    _row(0, "Launch Statistics", "Registers Per Thread", "register/thread", "168"),
    _row(0, "Command line profiler metrics", "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",
         "%", "63.10"),
    _row(0, "Command line profiler metrics", "smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio",
         "ratio", "0.42"),
    _row(0, "Command line profiler metrics", "smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio",
         "ratio", "1.37"),
    _row(0, "Command line profiler metrics", "smsp__average_warps_issue_stalled_wait_per_issue_active.ratio",
         "ratio", "0.91"),
    _row(0, "Command line profiler metrics", "smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active"
         ".ratio", "ratio", "0.05"),
    _row(2, "GPU Speed Of Light Throughput", "Duration", "usecond", "3.10", kernel="_zero_fill"),
]


def test_a_recorded_ncu_csv_reduces_to_ten_numbers_and_the_top_stalls_per_kernel() -> None:
    summary = summarise(read_rows(RECORDED))
    attn = summary["_attn_fwd"]
    assert attn["launches"] == 2 and attn["sm_throughput_pct"] == 72.0  # the mean over launches
    assert attn["memory_throughput_pct"] == 38.2 and attn["dram_throughput_pct"] == 12.04
    assert attn["tensor_pipe_pct"] == 63.1 and attn["issue_slots_busy_pct"] == 41.3
    assert attn["eligible_warps_per_scheduler"] == 0.85 and attn["no_eligible_pct"] == 58.7
    assert attn["achieved_occupancy_pct"] == 12.4 and attn["registers_per_thread"] == 168
    assert attn["duration_us"] == 1250.0
    assert attn["top_stalls"] == [("barrier", 1.37), ("wait", 0.91), ("long_scoreboard", 0.42)]
    assert summary["_zero_fill"]["duration_us"] == 3.1 and summary["_zero_fill"]["sm_throughput_pct"] is None


def test_the_command_asks_for_the_sections_and_metrics_the_summary_reads() -> None:
    assert ARGUMENTS[:2] == ("--section", "SpeedOfLight") and "--metrics" in ARGUMENTS
    metrics = ARGUMENTS[ARGUMENTS.index("--metrics") + 1].split(",")
    assert "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active" in metrics
    assert "smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio" in metrics


def test_the_profile_section_shows_the_summary_instead_of_the_raw_csv() -> None:
    from evoagent.result import EvalResult, StageResult, Status
    from evoagent.targets.attention.agent_text import sections

    profile = StageResult(name="profile", details={"config": "c", "ncu": {"available": True, "returncode": 0,
                                                                         "csv": [r for r in RECORDED if r[0] == '"']}})
    text = dict(sections(EvalResult(status=Status.OK, stages=(profile,))))["profile"]
    assert "ncu: Nsight Compute, per kernel:\n_attn_fwd (2 launches): sm_throughput_pct 72" in text
    assert "top stalls (warps per issued instruction): barrier 1.37, wait 0.91, long_scoreboard 0.42" in text
    assert "Metric Name" not in text
