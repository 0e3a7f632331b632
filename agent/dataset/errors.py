"""The dataset builder's leaves of the error tree (radagent.errors)."""

from __future__ import annotations

from radagent.errors import InputError, RadagentError, RequestError


class DatasetError(RequestError):
    """The source, manifest, options or output folder cannot be used (CLI exit code 2)."""


class SegmentationUnavailableError(InputError):
    """A case has no masks and the build was not asked to segment (--segment)."""


class WorkerCrashedError(RadagentError):
    """The worker process died (crash or out-of-memory kill) while processing this case alone."""
