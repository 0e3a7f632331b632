"""Errors raised by perception.

Exception tree::

    RadagentError                 base of everything radagent raises on purpose
    +-- InputError                the user's input is unusable (CLI exit code 2)
        +-- CTLoadError           CT file/folder missing, corrupt, truncated, not 3D, NaN/inf
        +-- ModalityError         the image is not CT (e.g. MR)
        +-- DicomSeriesError      DICOM series geometry refused (gaps, duplicates, several series)
        +-- MaskError             mask file/folder unusable, unknown mask names
        +-- GeometryMismatchError mask grid differs from the CT grid

Every message names the file and what was expected versus what was found.
"""

from __future__ import annotations


class RadagentError(Exception):
    """Base class of radagent's own errors."""


class InputError(RadagentError):
    """The user's input cannot be used; the CLI exits with code 2."""

    exit_code = 2


class CTLoadError(InputError):
    pass


class ModalityError(InputError):
    pass


class DicomSeriesError(InputError):
    pass


class MaskError(InputError):
    pass


class GeometryMismatchError(InputError):
    pass
