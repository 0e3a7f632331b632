"""Errors raised by the segmentation backends.

Exception tree (under perception.errors.RadagentError)::

    SegmentError                      segmentation could not run
    +-- BackendUnavailableError       unknown backend or task, its packages missing, a task absent from
    |                                 the installed version, a licence-gated task without a licence
    +-- WeightsMissingError           model weights not on disk and not downloadable (says which task
    |                                 needs which dataset folder, and how to install it offline)
    +-- CheckpointError               a UniT checkpoint is unreadable or does not fit the model
    +-- DeviceError                   the requested device is not available
    +-- SegmentConfigError            a UniT config file is invalid (names the field)

    radagent.errors.RequestError
    +-- SegmentRequestError           a SegmentRequest is invalid: each problem names the field (and its
                                      CLI option), what was expected and what was found

Every one of them is also an InputError: the user can fix it (install, download, choose another
device), and the CLI turns it into a message and exit code 2.
"""

from __future__ import annotations

from radagent.errors import RequestError

from ..errors import InputError


class SegmentError(InputError):
    """Base class of segmentation errors."""


class BackendUnavailableError(SegmentError):
    pass


class WeightsMissingError(SegmentError):
    pass


class CheckpointError(SegmentError):
    pass


class DeviceError(SegmentError):
    pass


class SegmentConfigError(SegmentError):
    pass


class SegmentRequestError(RequestError):
    """An invalid segmentation request. ``problems``: (field, message) pairs, one per refusal."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


def missing_package_message(what: str, packages: str) -> str:
    return (f"{what} needs {packages} (not installed in this environment). Add it to this environment with one "
            f"command: {SEGMENT_INSTALL} (CPU torch; leave out --extra-index-url for the CUDA build on a GPU machine). "
            f"The separate venv .cache/seg-venv (`bash scripts/setup_seg_env.sh`) holds the same stack.")


# the one command that adds the segmentation stack (the `segment` extra pins torch 2.13.0, TotalSegmentator, ...)
SEGMENT_INSTALL = "pip install -e '.[segment]' --extra-index-url https://download.pytorch.org/whl/cpu"
