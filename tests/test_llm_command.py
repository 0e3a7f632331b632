"""The vLLM command line radagent builds (no server started): the structured-output backend is a
choice (xgrammar by default: vLLM 0.32's "auto" fallback breaks tool calls, see agent/llm_server.py),
tool calls are enabled, the served context is the one the client reads."""

from __future__ import annotations

import json

import pytest

from agent import llm_server


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_command_leaves_the_backend_to_vllm_and_sets_the_context():
    cmd = llm_server.build_command("/m/Qwen3-8B", port=8123, python="py", device="cuda")
    assert json.loads(_arg(cmd, "--structured-outputs-config")) == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert _arg(cmd, "--max-model-len") == "8192" and _arg(cmd, "--served-model-name") == "Qwen3-8B"
    assert _arg(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in cmd
    assert "--enforce-eager" not in cmd  # CPU only
    cpu = llm_server.build_command("/m/x", python="py", device="cpu", max_model_len=4096,
                                   extra_args=["--reasoning-parser", "qwen3"], structured_backend="auto")
    assert "--enforce-eager" in cpu and _arg(cpu, "--max-model-len") == "4096"
    assert cpu[-2:] == ["--reasoning-parser", "qwen3"]
    # vLLM refuses disable_any_whitespace with "auto"; an unknown backend is refused here, naming the choices
    assert json.loads(_arg(cpu, "--structured-outputs-config")) == {"backend": "auto"}
    with pytest.raises(ValueError, match="expected one of xgrammar, guidance, auto"):
        llm_server.build_command("/m/x", python="py", device="cpu", structured_backend="outlines")
