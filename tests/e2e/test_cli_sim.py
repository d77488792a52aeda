"""``fetchpipe sim serve`` as a real subprocess: what a user sees when it cannot listen."""

from __future__ import annotations

import socket

from tests.e2e.conftest import RunCli


def test_a_port_in_use_is_one_line_with_a_hint_and_exit_2(run_cli: RunCli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("sim", "serve", "--hosts", "2", "--port", str(port), timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1 port {port}: ")
    assert "in use" in line
    assert "HINT: " in line and "--port" in line
    assert done.stdout == ""  # no base URLs printed for a fleet that is not there
