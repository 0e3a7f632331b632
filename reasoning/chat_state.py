"""The chat agent's conversation state and follow-up resolution, now beside the VQA in
:mod:`reasoning.vqa.followup`; re-exported here for callers that import them from this module."""

from reasoning.vqa.followup import (
                                    ChatState,
                                    Resolution,
                                    _organ_of,
                                    answer_text,
                                    context_organ,
                                    describe_lesion,
                                    find_lesion,
                                    ranked_lesions,
                                    resolve,
)

__all__ = ["ChatState", "Resolution", "_organ_of", "answer_text", "context_organ", "describe_lesion", "find_lesion",
           "ranked_lesions", "resolve"]
