"""The vLLM command line radagent builds (no server started): the structured-output backend is left
to vLLM's "auto" choice, which falls back between xgrammar and guidance per request, instead of
one backend hard-coded; tool calls are enabled; the served context is the one the client reads."""

from __future__ import annotations

import json

from agent import llm_server


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_command_leaves_the_backend_to_vllm_and_sets_the_context():
    cmd = llm_server.build_command("/m/Qwen3-8B", port=8123, python="py", device="cuda")
    assert json.loads(_arg(cmd, "--structured-outputs-config")) == {"backend": "auto"}
    assert _arg(cmd, "--max-model-len") == "8192" and _arg(cmd, "--served-model-name") == "Qwen3-8B"
    assert _arg(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in cmd
    assert "--enforce-eager" not in cmd  # CPU only
    cpu = llm_server.build_command("/m/x", python="py", device="cpu", max_model_len=4096,
                                   extra_args=["--reasoning-parser", "qwen3"])
    assert "--enforce-eager" in cpu and _arg(cpu, "--max-model-len") == "4096"
    assert cpu[-2:] == ["--reasoning-parser", "qwen3"]
