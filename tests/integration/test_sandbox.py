"""The sandbox with real fork servers and child processes: labels, limits, isolation, recovery."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sandbox_helpers as helpers

from evoagent.candidate import Candidate
from evoagent.errors import ConfigError, SandboxError
from evoagent.evaluator import FunctionEvaluator
from evoagent.result import Status
from evoagent.sandbox import Sandbox, SandboxConfig
from evoagent.scheduling import Priority, gpu_priority


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the calls of `sb` may write (confined calls write nowhere else but their own)."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def sb(shared: Path) -> Sandbox:
    with Sandbox(SandboxConfig(timeout_s=20.0, workers=2, preload=("numpy",), write_paths=(shared,))) as sandbox:
        yield sandbox


def _is_gone(pid: int, within_s: float = 60.0) -> bool:
    """True once `pid` no longer runs (absent, or a zombie waiting to be reaped); the wait is long so that a busy
    machine cannot fail the test, and it ends as soon as the process is gone."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def _server_pid(sandbox: Sandbox) -> int:
    """The pid of the sandbox's first fork server (a confined call's parent is its namespace's init, not the server)."""
    finalizer = sandbox._finalizer.peek()
    assert finalizer is not None
    return finalizer[2][0][0].proc.pid


def test_call_returns_value_from_own_process_group_in_fresh_directory(sb: Sandbox) -> None:
    out = sb.call(helpers.child_facts)
    assert out.status is Status.OK and out.ok, out.reason
    facts = out.value
    assert facts["pid"] != os.getpid() and facts["ppid"] != os.getpid()  # forked from a server, not from us
    assert facts["pgid"] == facts["pid"]  # its own process group
    assert facts["sys_path0"] == facts["cwd"]
    assert not Path(facts["cwd"]).exists()  # the working directory is removed afterwards
    assert out.exitcode == 0 and out.signal is None and 0 < out.wall_s < 5


def test_arguments_and_numpy_arrays_round_trip(sb: Sandbox) -> None:
    value = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "t": (1, "x", b"\0"), "n": None}
    out = sb.call(helpers.echo, value)
    assert out.ok, out.reason
    assert np.array_equal(out.value["a"], value["a"]) and out.value["a"].dtype == np.float32
    assert out.value["t"] == (1, "x", b"\0") and out.value["n"] is None
    assert sb.call(helpers.matmul_numpy, 64).value == float((np.arange(4096.0).reshape(64, 64) @
                                                             np.arange(4096.0).reshape(64, 64)).sum())


def test_timeout_kills_the_whole_process_group(sb: Sandbox, shared: Path) -> None:
    pid_file = shared / "grandchild.pid"
    started = time.monotonic()
    out = sb.call(helpers.sleep_with_grandchild, str(pid_file), 100.0, timeout_s=1.0)
    assert out.status is Status.TIMEOUT
    assert out.reason.startswith("exceeded 1.0 s")
    assert 1.0 <= out.wall_s < 50.0 and time.monotonic() - started < 50.0  # the timeout ended it, not the 100 s sleep
    assert _is_gone(int(pid_file.read_text())), "the grandchild `sleep 100` survived the timeout"


def test_processes_escaping_into_a_new_session_are_killed_after_the_call(sb: Sandbox, shared: Path) -> None:
    out = sb.call(helpers.escape_process_group, str(shared / "escapee.pid"))
    assert out.ok, out.reason
    assert _is_gone(out.value), "a process started with setsid outlived its call"


def test_exception_is_a_crash_with_its_traceback(sb: Sandbox) -> None:
    out = sb.call(helpers.raise_value_error)
    assert out.status is Status.CRASH
    assert out.reason.startswith("raised ValueError: the candidate is wrong on purpose")
    assert "sandbox_helpers.py" in out.error and "raise_value_error" in out.error
    assert out.error in out.reason and "_forkserver" not in out.error


@pytest.mark.parametrize(("fn", "expected"), [
    (helpers.exit_early, "exited with code 3 before returning a result"),
    (helpers.segfault, "killed by signal SIGSEGV"),
])
def test_dying_process_is_a_crash_naming_how_it_ended(sb: Sandbox, fn: object, expected: str) -> None:
    out = sb.call(fn, 3) if fn is helpers.exit_early else sb.call(fn)
    assert out.status is Status.CRASH
    assert expected in out.reason
    if fn is helpers.exit_early:
        assert out.exitcode == 3 and out.stdout == "about to exit\n"
    else:
        assert out.signal == 11 and "Segmentation fault" in out.stderr  # faulthandler's dump


def test_sys_exit_is_a_crash(sb: Sandbox) -> None:
    out = sb.call(helpers.sys_exit, 4)
    assert out.status is Status.CRASH and "SystemExit: 4" in out.reason


def test_memory_limit_turns_big_allocations_into_oom() -> None:
    config = SandboxConfig(workers=1, memory_mb=512, preload=("numpy",), timeout_s=20.0)
    with Sandbox(config) as sandbox:
        assert sandbox.call(helpers.allocate_bytes, 100 * 2**20).value == 100 * 2**20
        for fn in (helpers.allocate_bytes, helpers.reserve_address_space):
            out = sandbox.call(fn, 4 * 2**30)
            assert out.status is Status.OOM, out.reason
            assert "out of memory (limit 512 MiB" in out.reason
        out = sandbox.call(helpers.allocate_numpy, 2**30)  # 8 GiB of float64
        assert out.status is Status.OOM and "ArrayMemoryError" in out.reason


@pytest.mark.parametrize("confine", [True, False])
def test_secrets_never_reach_the_server_or_the_call(monkeypatch: pytest.MonkeyPatch, confine: bool) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-leaked")
    monkeypatch.setenv("MY_TOKEN", "tok-leaked")
    monkeypatch.setenv("TRITON_API_KEY", "tri-leaked")
    monkeypatch.setenv("EVO_PUBLIC_KEY", "allowed")
    monkeypatch.setenv("EVO_UNLISTED_SETTING", "not-base")
    config = SandboxConfig(workers=1, preload=(), env_allowlist=("EVO_PUBLIC_KEY",), confine=confine)
    with Sandbox(config) as sandbox:
        monkeypatch.setenv("LATE_SECRET", "set-after-start")
        env = sandbox.call(helpers.environment).value
        server_env = sandbox.call(helpers.server_environment)
    for leaked in ("OPENAI_API_KEY", "MY_TOKEN", "TRITON_API_KEY", "LATE_SECRET", "EVO_UNLISTED_SETTING"):
        assert leaked not in env
    if confine:  # the server is outside the call's Landlock domain: its /proc is out of reach
        assert server_env.status is Status.CRASH and "Permission denied" in server_env.reason
    else:
        assert "leaked" not in server_env.value
    assert env["EVO_PUBLIC_KEY"] == "allowed"
    assert env["PATH"] == os.environ["PATH"]


def test_env_argument_adds_variables_for_one_call(sb: Sandbox) -> None:
    assert sb.call(helpers.env_var, "TRITON_INTERPRET", env={"TRITON_INTERPRET": "1"}).value == "1"
    assert sb.call(helpers.env_var, "TRITON_INTERPRET").value is None


def test_printing_a_fake_result_does_not_change_the_value(sb: Sandbox) -> None:
    out = sb.call(helpers.print_fake_result)
    assert out.ok and out.value == 1
    assert "RESULT: 999" in out.stdout


def test_forged_payload_in_the_channel_is_a_crash_and_the_worker_stays_clean(sb: Sandbox) -> None:
    out = sb.call(helpers.forge_channel, 5)
    assert out.status is Status.CRASH
    assert out.reason == "result channel held data that is not a plain value"
    for value in range(4):  # both workers still answer truthfully
        assert sb.call(helpers.add, value, 1).value == value + 1


def test_malicious_pickle_in_the_channel_runs_no_code(sb: Sandbox, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    out = sb.call(helpers.write_malicious_pickle, str(marker))
    assert out.status is Status.CRASH
    assert out.reason == "result channel held data that is not a plain value"
    assert not marker.exists()


def test_files_are_in_the_working_directory_and_importable(sb: Sandbox) -> None:
    files = {"kernel.py": "def answer():\n    return 42\n", "data/info.txt": b"hello"}
    out = sb.call(helpers.import_candidate, "kernel", files=files)
    assert out.ok, out.reason
    assert out.value == {"answer": 42, "data": "hello", "listing": ["data", "kernel.py"]}


def test_two_workers_run_four_threaded_calls_two_at_a_time(sb: Sandbox) -> None:
    results = []
    threads = [threading.Thread(target=lambda: results.append(sb.call(helpers.sleep_then_report, 0.5)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == [Status.OK] * 4
    events = sorted([(s, 1) for s, _ in (r.value for r in results)] + [(e, -1) for _, e in (r.value for r in results)])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_killed_server_is_restarted_transparently() -> None:
    with Sandbox(SandboxConfig(workers=1, preload=())) as sandbox:
        assert sandbox.call(helpers.child_facts).ok
        first = _server_pid(sandbox)
        os.kill(first, 9)
        assert _is_gone(first)
        out = sandbox.call(helpers.child_facts)
        assert out.ok, out.reason
        assert _server_pid(sandbox) != first


def test_call_that_kills_its_server_is_a_harness_error_and_the_next_call_works() -> None:
    with Sandbox(SandboxConfig(workers=1, preload=(), confine=False)) as sandbox:
        out = sandbox.call(helpers.kill_server, timeout_s=5.0)
        assert out.status is Status.HARNESS_ERROR
        assert "died during the call" in out.reason
        assert sandbox.call(helpers.add, 1, 2).value == 3


def test_a_confined_call_cannot_signal_its_server() -> None:
    with Sandbox(SandboxConfig(workers=1, preload=())) as sandbox:
        assert sandbox.call(helpers.child_facts).ok
        server = _server_pid(sandbox)
        out = sandbox.call(helpers.kill_server, timeout_s=5.0)  # its parent is outside its PID namespace:
        assert out.status is Status.CRASH  # getppid() is 0, and kill(0) is its own process group
        assert sandbox.call(helpers.child_facts).ok and _server_pid(sandbox) == server  # the same server, alive


def test_gpu_calls_go_to_the_pinned_worker() -> None:
    with Sandbox(SandboxConfig(workers=1, preload=(), memory_mb=512), gpus=(7,)) as sandbox:
        assert sandbox.call(helpers.env_var, "CUDA_VISIBLE_DEVICES", gpu=True).value == "7"
        assert sandbox.call(helpers.env_var, "CUDA_VISIBLE_DEVICES").value == ""


def test_gpu_workers_can_come_from_the_config() -> None:
    """How an evaluator's sandbox_config() makes the engine's sandbox schedule by device."""
    config = SandboxConfig(workers=1, preload=(), memory_mb=512, gpus=(3,))
    with Sandbox(config) as sandbox:
        assert sandbox.gpus == ("3",)
        assert sandbox.call(helpers.env_var, "CUDA_VISIBLE_DEVICES", gpu=True).value == "3"
        # CUDA reserves huge address ranges, so the address-space limit is left off on GPU workers
        assert sandbox.call(helpers.reserve_address_space, 4 * 2**30, gpu=True).ok
        assert sandbox.call(helpers.reserve_address_space, 4 * 2**30).status is Status.OOM


def test_gpu_calls_wait_by_priority_and_their_busy_time_is_counted(tmp_path: Path) -> None:
    """Confirmations jump queued exploratory calls on the one GPU worker; busy time covers every call."""
    hold, log = tmp_path / "hold", tmp_path / "order"
    hold.write_text("")
    config = SandboxConfig(workers=1, preload=(), memory_mb=512, gpus=("5",), write_paths=(str(tmp_path),))
    with Sandbox(config) as sandbox:
        queue = sandbox._state.gpu
        results: list[object] = []

        def call(tag: str, priority: Priority) -> None:
            with gpu_priority(priority):
                results.append(sandbox.call(helpers.append_after, str(hold), str(log), tag, gpu=True))

        threads = [threading.Thread(target=call, args=("first", Priority.EXPLORATORY))]
        threads[0].start()
        assert queue.wait_until(lambda s: s.busy == ("5",), timeout_s=60)  # "first" holds the GPU
        for n, (tag, priority) in enumerate([("draft", Priority.EXPLORATORY), ("confirm", Priority.CONFIRM)]):
            threads.append(threading.Thread(target=call, args=(tag, priority)))
            threads[-1].start()
            assert queue.wait_until(lambda s, n=n: s.waiting_total == n + 1, timeout_s=60)
        hold.unlink()
        for thread in threads:
            thread.join(60)
        assert log.read_text().split() == ["first", "confirm", "draft"]
        (usage,) = sandbox.gpu_usage()
        assert usage.device == "5" and usage.calls == 3
        assert sum(r.wall_s for r in results) <= usage.busy_s <= usage.wall_s  # the slot outlasts each child
    assert sandbox.gpu_usage()[0].calls == 3  # still readable after close


def test_gpu_call_without_gpus_is_refused(sb: Sandbox) -> None:
    with pytest.raises(SandboxError, match="gpus=\\(0,\\)"):
        sb.call(helpers.add, 1, 2, gpu=True)


def _nested() -> object:
    def inner() -> int:
        return 1

    return inner


@pytest.mark.parametrize("fn", [lambda: 1, _nested()], ids=["lambda", "closure"])
def test_functions_that_cannot_be_imported_by_reference_are_refused(sb: Sandbox, fn: object) -> None:
    with pytest.raises(TypeError, match="pass a module-level function"):
        sb.call(fn)


def test_functions_from_modules_loaded_by_file_path_work(sb: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "scored_elsewhere.py"
    path.write_text("def triple(x):\n    return 3 * x\n")
    spec = importlib.util.spec_from_file_location("evo_test_file_loaded", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["evo_test_file_loaded"] = module
    try:
        spec.loader.exec_module(module)
        assert sb.call(module.triple, 5).value == 15
        assert sb.call(helpers.apply, module.triple, 2).value == 6  # as an argument too
    finally:
        del sys.modules["evo_test_file_loaded"]


def test_function_evaluator_scores_through_run_module_function(sb: Sandbox) -> None:
    evaluator = FunctionEvaluator(helpers.score_answer, timeout_s=10.0)
    good = evaluator.evaluate(Candidate.from_source("def answer():\n    return 42\n"), sb)
    assert good.ok and good.metrics == {"answer": 42.0}
    bad = evaluator.evaluate(Candidate.from_source("def answer():\n    return 41\n"), sb)
    assert bad.status is Status.INCORRECT and "expected 42" in bad.reason
    broken = evaluator.evaluate(Candidate.from_source("def answer(:\n"), sb)
    assert broken.status is Status.CRASH and "SyntaxError" in broken.reason


def test_an_unsendable_return_value_is_the_evaluators_harness_error_naming_function_and_type(sb: Sandbox) -> None:
    out = sb.call(helpers.return_object)  # the called function is the evaluator's, never the candidate's
    assert out.status is Status.HARNESS_ERROR
    assert out.reason.startswith("the evaluator's function sandbox_helpers.return_object returned a value the "
                                 "sandbox cannot carry")
    assert "the return value of type builtins.object" in out.reason


def test_output_and_result_sizes_are_capped() -> None:
    config = SandboxConfig(workers=1, preload=(), max_output_bytes=1000, max_result_bytes=10_000)
    with Sandbox(config) as sandbox:
        out = sandbox.call(helpers.print_lots, 50_000)
        assert out.ok
        assert len(out.stdout) < 1100 and "bytes cut" in out.stdout and out.stdout.endswith("o")
        big = sandbox.call(helpers.echo, b"x" * 20_000)
        assert big.status is Status.CRASH and "more than 10000 bytes" in big.reason


def test_unimportable_preload_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        Sandbox(SandboxConfig(workers=1, preload=("no_such_module_xyz",)))


def test_closed_sandbox_refuses_calls_and_stops_its_servers() -> None:
    sandbox = Sandbox(SandboxConfig(workers=1, preload=()))
    assert sandbox.call(helpers.child_facts).ok
    server = _server_pid(sandbox)
    sandbox.close()
    assert _is_gone(server)
    with pytest.raises(SandboxError, match="closed"):
        sandbox.call(helpers.add, 1, 2)


def test_closing_during_a_call_ends_it_and_kills_its_processes(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(workers=1, preload=(), write_paths=(tmp_path,)))
    pid_file = tmp_path / "grandchild.pid"
    results = []
    worker = threading.Thread(target=lambda: results.append(
        sandbox.call(helpers.sleep_with_grandchild, str(pid_file), 100.0, timeout_s=60.0)))
    worker.start()
    deadline = time.monotonic() + 120  # the fork server's start, however busy the machine
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.02)
    sandbox.close()
    worker.join(50)  # the call's own timeout is 60 s, its sleep 100 s
    assert not worker.is_alive()
    assert results[0].status is Status.HARNESS_ERROR and "closed during the call" in results[0].reason
    assert _is_gone(int(pid_file.read_text()))


def test_a_dropped_sandbox_stops_its_servers_when_collected() -> None:
    sandbox = Sandbox(SandboxConfig(workers=1, preload=()))
    assert sandbox.call(helpers.child_facts).ok
    server = _server_pid(sandbox)
    del sandbox  # no reference cycles: the last reference going runs its finalizer
    assert _is_gone(server)


def test_a_sandbox_never_closed_leaves_no_server_behind(tmp_path: Path) -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import sandbox_helpers as h\n"
        "from evoagent.sandbox import Sandbox, SandboxConfig\n"
        "sb = Sandbox(SandboxConfig(workers=1, preload=()))\n"
        "assert sb.call(h.child_facts).ok\n"
        "print(sb._finalizer.peek()[2][0][0].proc.pid, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(Path(helpers.__file__).parent)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _is_gone(int(done.stdout))


TRITON_ADD = """
import torch
import triton
import triton.language as tl


@triton.jit
def _add(x, y, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out + offsets, tl.load(x + offsets, mask=mask) + tl.load(y + offsets, mask=mask), mask=mask)


def add(x, y):
    out = torch.empty_like(x)
    _add[(triton.cdiv(x.numel(), 64),)](x, y, out, x.numel(), BLOCK=64)
    return out
"""


@pytest.mark.slow
def test_per_call_env_reaches_a_preimported_triton_interpreter() -> None:
    pytest.importorskip("triton")
    with Sandbox(SandboxConfig(workers=1, preload=("torch", "triton"))) as sandbox:
        out = sandbox.call(helpers.run_triton_add, 100, files={"kern.py": TRITON_ADD},
                           env={"TRITON_INTERPRET": "1"})
    assert out.ok, out.reason
    assert np.array_equal(out.value, np.arange(100, dtype=np.float32) + 1)


@pytest.mark.parametrize("kwargs", [
    {"timeout_s": 0}, {"timeout_s": float("inf")}, {"memory_mb": -1}, {"memory_mb": 1.5}, {"workers": 0},
    {"preload": "numpy"}, {"env_allowlist": [1]}, {"max_output_bytes": True},
])
def test_bad_config_values_are_config_errors_naming_the_field(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f"SandboxConfig.{next(iter(kwargs))}"):
        SandboxConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"timeout_s": -1}, ValueError, "timeout_s must be a positive number"),
    ({"files": {"../escape.py": "x"}}, ValueError, "relative path without '..'"),
    ({"files": {"a.py": 1}}, TypeError, "must be str or bytes"),
    ({"env": {"X": 1}}, TypeError, "env must map variable names to strings"),
    ({"write_paths": ("relative/cache",)}, ValueError, "write_paths must hold absolute paths"),
    ({"write_paths": "/one/string"}, TypeError, "write_paths must be a sequence"),
])
def test_bad_call_arguments_are_refused_before_running(sb: Sandbox, kwargs: dict[str, object],
                                                       error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        sb.call(helpers.add, 1, 2, **kwargs)


def test_unpicklable_arguments_are_refused(sb: Sandbox) -> None:
    with pytest.raises(TypeError, match="must be picklable"):
        sb.call(helpers.echo, threading.Lock())
