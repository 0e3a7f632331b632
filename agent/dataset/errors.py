"""The dataset builder's leaves of the error tree (radagent.errors)."""

from __future__ import annotations

import errno

from radagent.errors import InputError, RadagentError, RequestError


class DatasetError(RequestError):
    """The source, manifest, options or output folder cannot be used (CLI exit code 2)."""


class SegmentationUnavailableError(InputError):
    """A case has no masks and the build was not asked to segment (--segment)."""


class DatasetOutputError(RadagentError):
    """The output folder could not be written (disk full, I/O error, read-only, permission): not the
    input's fault; the build stops with a one-line message (CLI exit code 1) and the next run retries."""

    exit_code = 1


OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM})


def is_output_error(e: BaseException) -> bool:
    """An OSError of the output side (ENOSPC, EDQUOT, EIO, EROFS, EACCES, EPERM)."""
    return isinstance(e, OSError) and e.errno in OUTPUT_ERRNOS


class WorkerCrashedError(RadagentError):
    """The worker process died (crash or out-of-memory kill) while processing this case alone."""
