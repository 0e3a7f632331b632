"""Segmentation backends behind one protocol: CT -> LabelSet on the CT grid.

- ``masks``: masks the user already has (perception.masks.load_masks)
- ``totalseg``: TotalSegmentator tasks (organs, Couinaud segments, vessels, cysts, nodules)
- ``unit``: radagent's UniT-style tumour model (perception.segment.unit)

``segment_ct(ct, SegmentRequest.build(tasks=["total"], unit_weights="final.pt"))`` runs them (here
totalseg, then unit) and merges their LabelSets (provenance in each Mask.source). Importing this package
needs neither torch nor TotalSegmentator; a backend that needs them says so when it is created.
"""

from .base import (
                   BACKENDS,
                   MasksSegmenter,
                   Segmenter,
                   labelset_files,
                   make_segmenter,
                   make_segmenters,
                   merge_labelsets,
                   run_segmenters,
                   segment_ct,
                   select_device,
)
from .errors import (
                   BackendUnavailableError,
                   CheckpointError,
                   DeviceError,
                   SegmentConfigError,
                   SegmentError,
                   SegmentRequestError,
                   WeightsMissingError,
)
from .request import SegmentRequest

__all__ = [
                   "BACKENDS",
                   "BackendUnavailableError",
                   "CheckpointError",
                   "DeviceError",
                   "MasksSegmenter",
                   "SegmentConfigError",
                   "SegmentError",
                   "SegmentRequest",
                   "SegmentRequestError",
                   "Segmenter",
                   "WeightsMissingError",
                   "labelset_files",
                   "make_segmenter",
                   "make_segmenters",
                   "merge_labelsets",
                   "run_segmenters",
                   "segment_ct",
                   "select_device",
]
