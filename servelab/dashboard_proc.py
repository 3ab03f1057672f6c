"""Starting the Streamlit dashboard as a process bound to 127.0.0.1 by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dashboard

APP = Path(dashboard.__file__).parent / "app.py"


def dashboard_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
    ]


def serve_dashboard(store: str, host: str, port: int) -> None:
    """Runs the dashboard in the foreground until Ctrl-C."""
    env = dict(os.environ, SERVELAB_STORE=str(Path(store).resolve()))
    print(f"servelab dashboard: http://{host}:{port}  (store {store}; Ctrl-C to stop)",
          flush=True)
    proc = subprocess.Popen(dashboard_command(host, port), env=env)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
