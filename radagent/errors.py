"""radagent's error tree: one root for everything radagent raises on purpose.

Every stage imports its base classes from here; each stage keeps its own leaves in its own
module (``perception.errors``, ``perception.segment.errors``, ``reasoning.client``,
``agent.dataset.errors``). The CLI turns an ``InputError`` into its message and exit code 2, the
HTTP API into a 4xx answer; anything else is a bug and keeps its traceback.

Exception tree::

    RadagentError                       base of everything radagent raises on purpose
    +-- InputError                      the user's input or set-up is unusable (CLI exit 2, HTTP 422)
    |   +-- CTLoadError                 perception.errors: CT file/folder missing, corrupt, not 3D, NaN/inf
    |   +-- ModalityError               perception.errors: the image is not CT (e.g. MR)
    |   +-- DicomSeriesError            perception.errors: DICOM series geometry refused
    |   +-- MaskError                   perception.errors: mask file/folder unusable, unknown names
    |   +-- GeometryMismatchError       perception.errors: mask grid differs from the CT grid
    |   +-- SegmentError                perception.segment.errors: segmentation could not run
    |   |   +-- BackendUnavailableError, WeightsMissingError, CheckpointError, DeviceError,
    |   |       SegmentConfigError
    |   +-- RequestError                a request (segmentation, dataset or API settings) is invalid
    |   |   +-- SegmentRequestError     perception.segment.errors: a SegmentRequest field is invalid
    |   |   +-- DatasetError            agent.dataset.errors: the dataset source/options are invalid
    |   +-- SegmentationUnavailableError  agent.dataset.errors: a case without masks and no --segment
    +-- LLMError                        reasoning.client: the LLM server failed or answered unusably
    +-- WorkerCrashedError              agent.dataset.errors: a worker process died on a case

Every message names the file (or field) and what was expected versus what was found.
"""

from __future__ import annotations


class RadagentError(Exception):
    """Base class of radagent's own errors."""


class InputError(RadagentError):
    """The user's input cannot be used; the CLI exits with code 2."""

    exit_code = 2


class RequestError(InputError):
    """A typed request (segmentation, dataset build, API settings) is invalid; names the field."""
