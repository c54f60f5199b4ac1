"""What `evoagent run --executor ray` says when it cannot join a cluster, and how the cluster's size is read."""

from __future__ import annotations

import socket

import pytest

ray = pytest.importorskip("ray")

from evoagent import ClusterError, SandboxConfig  # noqa: E402
from evoagent.confinement import Confinement  # noqa: E402
from evoagent.ray_cluster import ClusterState, NodeState, connect, diagnose  # noqa: E402
from evoagent.ray_executor import node_folder  # noqa: E402


def test_a_cluster_refusing_the_driver_s_authentication_names_ray_auth_mode_and_the_token(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    printed = ("[2026-12-07 18:05:25,780 W 1 1] gcs_client.cc:210: Failed to get cluster ID from GCS server: "
               "Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n" * 15)
    line = diagnose("head:6379", ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379"), printed)
    assert line.startswith("cannot connect to the Ray cluster at 'head:6379': it refused this process's "
                           "authentication (RAY_AUTH_MODE is unset, the cluster uses token authentication)")
    assert "set RAY_AUTH_MODE=token" in line and "~/.ray/auth_token" in line and "\n" not in line


def test_token_mode_without_a_token_says_where_the_token_goes():
    exc = ray.exceptions.AuthenticationError("Token authentication is enabled but no authentication token was found")
    line = diagnose("auto", exc, "")
    assert "RAY_AUTH_MODE=token is set but no token was found" in line and "RAY_AUTH_TOKEN" in line


def test_a_version_mismatch_names_both_sides_versions():
    exc = RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.59.0\n    Python: 3.10.12\n"
                       "This process on node 10.0.0.2 was started with:\n    Ray: 2.60.0\n    Python: 3.11.7\n")
    line = diagnose("head:6379", exc, "")
    assert "Ray version mismatch (the cluster runs Ray 2.59.0, Python 3.10.12)" in line
    assert f"this process has Ray {ray.__version__}" in line and "\n" not in line


def test_auto_with_no_ray_on_this_machine_says_how_to_start_or_name_one():
    exc = ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                          "setting `--address` flag or `RAY_ADDRESS` environment variable.")
    assert "no Ray cluster runs on this machine; start one with `ray start --head`" in diagnose("auto", exc, "")


def test_an_address_where_nothing_listens_is_refused_before_ray_is_asked():
    with socket.socket() as s:  # a free port on the loopback, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=rf"nothing listens at 127.0.0.1:{port} \(connection refused\)"):
        connect(f"127.0.0.1:{port}", SandboxConfig())
    assert not ray.is_initialized()


def test_the_cluster_s_size_counts_only_the_live_nodes():
    state = ClusterState(nodes=(
        NodeState(node_id="a", name="10.0.0.1", alive=True, head=True, cpus=8, gpus=1),
        NodeState(node_id="b", name="10.0.0.2", alive=False, head=False, cpus=8, gpus=1),
        NodeState(node_id="c", name="10.0.0.3", alive=True, head=False, cpus=4, gpus=0)))
    assert (state.cpus, state.gpus, len(state.live)) == (12, 1, 2)
    assert state.describe("auto") == "ray (auto, 2 nodes, 12 CPUs, 1 GPUs)"


def test_the_weakest_confinement_is_the_one_with_the_least_protection():
    from evoagent.ray_executor import _weakness

    full = Confinement(enabled=True, landlock_abi=6, network_namespace=True)
    partial = Confinement(enabled=True, landlock_abi=3, network_namespace=True, missing=("signal scoping",))
    weaker = Confinement(enabled=True, missing=("Landlock", "a network namespace"))
    off = Confinement(enabled=False, missing=("all confinement",))
    assert sorted([off, weaker, full, partial], key=_weakness) == [full, partial, weaker, off]


def test_each_node_keeps_its_sandboxes_beside_the_driver_s_folder_never_inside_it():
    assert node_folder("/tmp/evoagent-ray-abc", "0453f656bacd620cae38") == "/tmp/evoagent-ray-abc-0453f656"
