"""HTTP worker processes of `drainpipe up`: one port, and never shared with another server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import drains


def test_a_second_server_on_a_taken_port_is_refused_not_sharing_it(tmp_path: Path) -> None:
    first = drains.start(tmp_path / "a", None, "--workers", "2")
    port = first.url.rsplit(":", 1)[1]
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "drainpipe.cli",
                "up",
                "--data-dir",
                str(tmp_path / "b"),
                "--port",
                port,
                "--workers",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert json.loads(first.text("/healthz"))["status"] == "ok"  # the first still serves
    finally:
        assert drains.stop(first) == 0
