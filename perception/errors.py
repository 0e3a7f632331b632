"""Errors raised by perception: the leaves of the tree drawn in ``radagent.errors``.

    radagent.errors.InputError    the user's input is unusable (CLI exit code 2)
        +-- CTLoadError           CT file/folder missing, corrupt, truncated, not 3D, NaN/inf
        +-- ModalityError         the image is not CT (e.g. MR)
        +-- DicomSeriesError      DICOM series geometry refused (gaps, duplicates, several series)
        +-- MaskError             mask file/folder unusable, unknown mask names
        +-- GeometryMismatchError mask grid differs from the CT grid

Every message names the file and what was expected versus what was found.
"""

from __future__ import annotations

from radagent.errors import InputError, RadagentError  # noqa: F401  (re-exported for perception's callers)


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
