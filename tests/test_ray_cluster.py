"""`mnist sweep --address` on a real two-node Ray cluster on 127.0.0.1: both nodes used, a lost node, a killed driver."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import SWEEP_ARGS, csv_rows, start_mnist, sweep_base, sweep_results, training, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster at a time under -n 2
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
RAY = [str(Path(sys.executable).with_name("ray"))]  # the venv's ray command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(monkeypatch, synthetic_root):
    """A head and a second node, each `ray start` with one CPU in its own session; both killed whatever happens.

    Token authentication as a real cluster has it, the test's own token in the environment of every process: nothing
    read from or written to ~/.ray. Yields (address, the second node's process group).
    """
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0123456789abcdef" * 2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 characters
    port = free_port()
    common = ["--num-cpus=1", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1", "--object-store-memory=100000000"]
    groups: list[int] = []
    try:
        for extra in (
            ["--head", f"--port={port}", f"--ray-client-server-port={free_port()}", "--include-dashboard=false"],
            [f"--address=127.0.0.1:{port}"],
        ):
            start = subprocess.Popen(
                [*RAY, "start", *extra, *common, "--disable-usage-stats"],
                env=env,
                start_new_session=True,  # the node's processes keep this group: killed together at the end
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            groups.append(start.pid)
            out, _ = start.communicate(timeout=120)
            assert start.returncode == 0, out
        yield f"127.0.0.1:{port}", groups[1]
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def sweep(address: str, out: Path, cwd: Path) -> subprocess.Popen:
    """The real command, as a user on the head node starts it."""
    return start_mnist(["sweep", "-c", sweep_base(cwd), *SWEEP_ARGS, "--address", address, "--out", out, "-q"], cwd)


def nodes(out: Path) -> dict[str, str]:
    """Where each run of a sweep trained: out_dir -> host/Ray node."""
    return {row["out_dir"]: row["node"] for row in csv_rows(out / "runs.csv")}


def pgrep(*args: str) -> list[int]:
    return [int(pid) for pid in subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout.split()]


def raylet(group: int) -> str:
    """The pid of the node's raylet; Ray titles a worker running a task of ours `ray::ray_task`."""
    (pid,) = pgrep("-g", str(group), "-x", "raylet")
    return str(pid)


def signal_node(group: int, workers: list[int], sig: signal.Signals) -> None:
    """Send `sig` to a node's processes: its `ray start` session and its workers, each in a session of its own."""
    os.killpg(group, sig)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):  # it may have died with its raylet already
            os.kill(pid, sig)


def test_a_sweep_on_two_nodes_survives_a_lost_node_and_a_killed_driver_with_the_local_accuracies(
    cluster, tmp_path, reference_sweep
):
    address, second_node = cluster
    # Both nodes train: the node column names two different Ray nodes.
    whole = sweep(address, tmp_path / "whole", tmp_path)
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err
    assert sweep_results(tmp_path / "whole") == reference_sweep
    print("where each run ran:", *(f"{run} on {node}" for run, node in nodes(tmp_path / "whole").items()), sep="\n  ")
    assert len(set(nodes(tmp_path / "whole").values())) == 2, nodes(tmp_path / "whole")

    # The second node lost (its raylet and workers killed, as a machine dies) while it and the head both train a run
    # that has saved last.pt: its task is retried on the head, resumes from last.pt and ends as an unbroken run. The
    # node is frozen first, then the runs still training are read: a run can no longer finish between the look and the
    # kill (a run takes a third of a second here), and two runs unfinished on two one-CPU nodes means one is on it.
    lost = sweep(address, tmp_path / "lost", tmp_path)

    def on_both() -> bool:
        return len(training(tmp_path / "lost")) == 2 and bool(pgrep("-P", raylet(second_node), "-f", "ray::ray_task"))

    for _ in range(10):
        wait_until(lost, on_both)
        workers = pgrep("-P", raylet(second_node))  # each Ray worker runs in a session of its own, a child of the raylet
        signal_node(second_node, workers, signal.SIGSTOP)
        at_loss = [str(p.relative_to(tmp_path / "lost")) for p in training(tmp_path / "lost")]
        if len(at_loss) == 2:
            break
        signal_node(second_node, workers, signal.SIGCONT)  # a run finished in between: look again
    else:
        pytest.fail("never two runs training at once on two nodes")
    signal_node(second_node, workers, signal.SIGKILL)
    _, err = lost.communicate(timeout=600)
    assert lost.returncode == 0, err
    assert sweep_results(tmp_path / "lost") == reference_sweep
    ended = nodes(tmp_path / "lost")
    assert len({ended[run] for run in at_loss}) == 1, ended  # the run the lost node held ended on the head
    print(f"second node lost while {' and '.join(at_loss)} trained; where each run ended:", *ended.items(), sep="\n  ")

    # The driver killed with SIGKILL mid-sweep and started again: it ends complete, each run trained once to the end.
    killed = sweep(address, tmp_path / "killed", tmp_path)
    wait_until(killed, lambda: bool(training(tmp_path / "killed")))
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    again = sweep(address, tmp_path / "killed", tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert sweep_results(tmp_path / "killed") == reference_sweep
