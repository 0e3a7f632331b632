"""radagent run through DeepTumorVQA's own evaluator (``deeptumorvqa.eval.vqa_evaluator.HFVLMEvaluator``).

:func:`radagent_evaluator` is that evaluator with radagent as the model: the benchmark iterates its
question file, wraps each question with its own prompt builder (2D image / 2D video / 3D volume, mc or
free form), and scores the outputs with its own ``eval/metrics.py``. radagent sees only the prompt
text (no subtype): the question is routed from the text, answered from the case's findings and
written as ``radagent eval vqa`` writes it (``eval.vqa_metrics.result_from_answer``: letters, the
benchmark's spellings, abstentions that scorer cannot credit).

``deeptumorvqa`` is not a radagent dependency: install it where you run this
(``pip install --no-deps ../shared/vendor/deeptumorvqa``). With it, ``deeptumorvqa-eval --backend
custom --custom-module eval.deeptumorvqa`` uses :func:`build_evaluator` (cases from
``RADAGENT_CASES``, a folder of ``<image_id>/findings.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eval.vqa_metrics import (
    BenchQuestion,
    Fmt,
    abstain_token,
    ask_text,
    result_from_answer,
)


def case_findings(cases_dir: Path, image_id: str):
    """Findings of ``cases_dir/<image_id>`` (a `radagent analyze` output), or None when there is none."""
    from agent import case as case_service
    from radagent.errors import InputError

    try:
        return case_service.load(Path(cases_dir) / image_id).findings
    except InputError:
        return None


def radagent_evaluator(cases_dir: str | Path, fmt: Fmt, image_ids: dict[str, str] | None = None):
    """DeepTumorVQA's own ``HFVLMEvaluator`` answering with radagent (needs the ``deeptumorvqa`` package).

    Its ``generate(prompt, images, video_path)`` receives only the benchmark's prompt (built by its
    ``build_prompt`` for 2D image / 2D video / 3D volume input): the question is routed from that text,
    no subtype is given. The case is found from the input the benchmark passes: ``video_path``
    (``.../ct/<image_id>/ct.nii.gz`` or ``.../<image_id>.mp4``) or the PNG's ``image_id`` text chunk;
    ``image_ids`` maps other paths to image ids."""
    try:
        from deeptumorvqa.eval.vqa_evaluator import HFVLMEvaluator
    except ImportError as e:
        raise ImportError(f"{e}: install DeepTumorVQA's evaluator (pip install --no-deps ../shared/vendor/deeptumorvqa)") from None

    root = Path(cases_dir)
    ids = dict(image_ids or {})

    class RadagentVQA(HFVLMEvaluator):
        def __init__(self):
            super().__init__(model_id="radagent", device="cpu")
            self._findings: dict[str, Any] = {}

        def image_id(self, images, video_path) -> str | None:
            if video_path:
                p = Path(video_path)
                return ids.get(str(p)) or (p.parent.name if p.name.startswith("ct.nii") else p.name.split(".")[0])
            for im in images or []:
                if getattr(im, "info", {}).get("image_id"):
                    return im.info["image_id"]
            return None

        def generate(self, prompt: str, images=None, video_path=None) -> str:
            iid = self.image_id(images, video_path)
            if iid is None:
                return abstain_token("no_case")
            if iid not in self._findings:
                self._findings[iid] = case_findings(root, iid)
            f = self._findings[iid]
            if f is None:
                return abstain_token("no_case")
            a = ask_text(f, prompt, None, fmt)
            dummy = BenchQuestion(qid="-", image_id=iid, question=prompt)
            r = result_from_answer(dummy, a, fmt)
            return r.pred_answer or r.raw_output

    return RadagentVQA()


def build_evaluator(args):
    """``deeptumorvqa-eval --backend custom --custom-module eval.deeptumorvqa`` entry point."""
    cases = os.environ.get("RADAGENT_CASES")
    if not cases:
        raise ValueError("set RADAGENT_CASES to the folder of analyzed cases (<image_id>/findings.json)")
    return radagent_evaluator(cases, getattr(args, "format", "mc"))
