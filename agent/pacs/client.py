"""A DICOMweb client for one PACS (QIDO-RS, WADO-RS, STOW-RS through ``dicomweb-client``), credentials from the
environment only.

``PacsSettings.from_env(url)`` reads ``RADAGENT_PACS_USER`` + ``RADAGENT_PACS_PASSWORD`` (HTTP Basic) or
``RADAGENT_PACS_TOKEN`` (HTTP Bearer); a URL carrying ``user:password@`` is refused (it would sit in shell
history and in ``ps``). Every HTTP failure becomes a ``PacsError`` naming the URL, the HTTP status and what to
do (401: the credentials in those variables were refused).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from radagent.errors import InputError

ENV_URL = "RADAGENT_PACS_URL"
ENV_USER = "RADAGENT_PACS_USER"
ENV_PASSWORD = "RADAGENT_PACS_PASSWORD"
ENV_TOKEN = "RADAGENT_PACS_TOKEN"

# a DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1); checked before a UID names a file or a URL
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
PAGE = 100  # QIDO-RS results asked for per request
_DATE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")

STUDY_FIELDS = ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime", "AccessionNumber",
                "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances")


class PacsError(InputError):
    """The PACS could not be reached, refused the request or the credentials, or answered unusably."""


def check_uid(uid: str, what: str = "UID") -> str:
    """``uid`` if it is a DICOM UID (digits and dots, <= 64 characters), else PacsError naming it."""
    uid = str(uid).strip()
    if not _UID.match(uid) or len(uid) > 64:
        raise PacsError(f"{what} {uid!r}: expected a DICOM UID (digits and dots, at most 64 characters)")
    return uid


def check_date(date: str) -> str:
    """A QIDO date match: YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end may be open)."""
    m = _DATE.match(date)
    if not date or date == "-" or not m:
        raise PacsError(f"date {date!r}: expected YYYYMMDD or a range YYYYMMDD-YYYYMMDD (an open end is allowed)")
    return date


@dataclass(frozen=True)
class PacsSettings:
    """Where the PACS's DICOMweb root is and how to authenticate (never printed: see ``describe``)."""

    url: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls, url: str | None = None, environ: dict[str, str] | None = None,
                 timeout_s: float = 60.0) -> PacsSettings:
        env = os.environ if environ is None else environ
        url = url or env.get(ENV_URL)
        if not url:
            raise PacsError(f"no PACS URL: pass --url (the DICOMweb root, e.g. http://host:8042/dicom-web) or set "
                            f"{ENV_URL}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError(f"PACS URL {url!r}: expected http(s)://host[:port]/path of the DICOMweb root")
        if parts.username is not None or parts.password is not None:
            raise PacsError(f"PACS URL for host {parts.hostname}: credentials in the URL are refused (they would be "
                            f"visible in shell history and the process list); set {ENV_USER} and {ENV_PASSWORD} "
                            f"(or {ENV_TOKEN}) in the environment")
        user, password, token = env.get(ENV_USER) or None, env.get(ENV_PASSWORD) or None, env.get(ENV_TOKEN) or None
        if token and (user or password):
            raise PacsError(f"both {ENV_TOKEN} and {ENV_USER}/{ENV_PASSWORD} are set: expected one way to "
                            "authenticate")
        if (user is None) != (password is None):
            missing = ENV_PASSWORD if password is None else ENV_USER
            raise PacsError(f"{missing} is not set: HTTP Basic authentication needs both {ENV_USER} and "
                            f"{ENV_PASSWORD}")
        return cls(url.rstrip("/"), user, password, token, timeout_s)

    def describe(self) -> str:
        """How this client authenticates, without the secret."""
        if self.token:
            return f"bearer token from {ENV_TOKEN}"
        if self.user:
            return f"user {self.user!r} from {ENV_USER}/{ENV_PASSWORD}"
        return f"no credentials ({ENV_USER}/{ENV_PASSWORD} and {ENV_TOKEN} unset)"


def _value(item: dict[str, Any], keyword: str) -> Any:
    """A DICOM JSON attribute's value (the first one; PersonName as its Alphabetic form); None when absent."""
    from pydicom.datadict import tag_for_keyword

    tag = f"{tag_for_keyword(keyword):08X}"
    values = (item.get(tag) or {}).get("Value") or []
    if not values:
        return None
    if keyword == "ModalitiesInStudy":
        return [str(v) for v in values]
    v = values[0]
    return v.get("Alphabetic") if isinstance(v, dict) else v


class PacsClient:
    """QIDO-RS / WADO-RS / STOW-RS against one DICOMweb root."""

    def __init__(self, settings: PacsSettings):
        import requests
        from dicomweb_client import DICOMwebClient

        self.settings = settings
        session = requests.Session()
        if settings.user:
            session.auth = (settings.user, settings.password)
        elif settings.token:
            session.headers["Authorization"] = f"Bearer {settings.token}"
        self._web = DICOMwebClient(settings.url, session=session, timeout=settings.timeout_s)
        self._web.set_http_retry_params(retry=False)

    def _call(self, what: str, fn, *args, **kwargs):
        import requests

        url = self.settings.url
        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status in (401, 403):
                raise PacsError(f"PACS {url} refused the credentials for {what} (HTTP {status}): "
                                f"{self.settings.describe()}; check them") from None
            reason = e.response.reason if e.response is not None else ""
            raise PacsError(f"PACS {url}: {what} failed with HTTP {status} {reason}".rstrip()) from None
        except requests.ConnectionError as e:
            raise PacsError(f"PACS {url}: cannot connect for {what} ({type(e).__name__}); is the server running "
                            "and the URL the DICOMweb root?") from None
        except requests.Timeout:
            raise PacsError(f"PACS {url}: no answer to {what} within {self.settings.timeout_s:g} s") from None

    # --- QIDO-RS ----------------------------------------------------------------------------------------
    def find_studies(self, *, patient_id: str | None = None, study_uid: str | None = None,
                     modality: str | None = None, date: str | None = None, accession: str | None = None
                     ) -> list[dict[str, Any]]:
        """Studies matching every filter given, as plain dicts of STUDY_FIELDS (None where the PACS says none)."""
        filters: dict[str, str] = {}
        if patient_id:
            filters["PatientID"] = patient_id
        if study_uid:
            filters["StudyInstanceUID"] = check_uid(study_uid, "study UID")
        if modality:
            if not re.match(r"^[A-Z]{1,16}$", modality):
                raise PacsError(f"modality {modality!r}: expected a DICOM modality code such as CT, MR, SEG")
            filters["ModalitiesInStudy"] = modality
        if date:
            filters["StudyDate"] = check_date(date)
        if accession:
            filters["AccessionNumber"] = accession
        items = self._pages("QIDO-RS study search", self._web.search_for_studies, "StudyInstanceUID",
                            search_filters=filters, fields=list(STUDY_FIELDS))
        out = []
        for item in items:
            row = {k: _value(item, k) for k in STUDY_FIELDS}
            for k in ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"):
                row[k] = int(row[k]) if row[k] is not None else None
            out.append(row)
        return sorted(out, key=lambda r: (r["StudyDate"] or "", r["StudyInstanceUID"] or ""))

    def study_instance_count(self, study_uid: str) -> int:
        """How many instances the PACS holds for the study now (QIDO-RS instance search)."""
        uid = check_uid(study_uid, "study UID")
        items = self._pages(f"QIDO-RS instance search of study {uid}", self._web.search_for_instances,
                            "SOPInstanceUID", study_instance_uid=uid, fields=["SOPInstanceUID"])
        return len(items)

    def _pages(self, what: str, fn, key: str, **kwargs) -> list[dict[str, Any]]:
        """Every result of a QIDO-RS search, PAGE at a time (limit/offset), each ``key`` once. Paging stops at a
        short page or at a page with nothing new: Orthanc's DICOMweb plugin 1.7 ignores ``offset`` when the query
        matches a computed attribute such as ModalitiesInStudy (measured), which makes dicomweb-client's own
        ``get_remaining`` loop forever."""
        seen: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = self._call(what, fn, limit=PAGE, offset=offset, **kwargs)
            new = {_value(it, key): it for it in page if _value(it, key) not in seen}
            seen.update(new)
            if len(page) < PAGE or not new:
                return list(seen.values())
            offset += len(page)

    # --- WADO-RS ----------------------------------------------------------------------------------------
    def retrieve_study(self, study_uid: str, out: Path) -> dict[str, Path]:
        """Every instance of the study into ``out/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` in its stored
        transfer syntax, streamed (one instance in memory at a time); returns series UID -> folder. ``out`` must be
        new or empty; it appears complete or not at all (written under a temporary name, then renamed). UIDs from
        the server are checked before they name files."""
        import shutil
        import tempfile

        uid = check_uid(study_uid, "study UID")
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            found = "a non-empty folder" if out.is_dir() else "an existing file"
            raise PacsError(f"{out}: expected a new or empty folder to retrieve study {uid} into, found {found}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            series = self._call(f"WADO-RS retrieval of study {uid}", self._save_study, uid, tmp)
            if not series:
                raise PacsError(f"PACS {self.settings.url}: study {uid} has no instances (WADO-RS returned none)")
            if out.exists():
                out.rmdir()
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return {s: out / s for s in sorted(series)}

    def _save_study(self, uid: str, folder: Path) -> set[str]:
        series: set[str] = set()
        for ds in self._web.iter_study(uid, media_types=(("application/dicom", "*"),)):
            s = check_uid(ds.get("SeriesInstanceUID", ""), f"SeriesInstanceUID of an instance of study {uid}")
            sop = check_uid(ds.get("SOPInstanceUID", ""), f"SOPInstanceUID of an instance of series {s}")
            (folder / s).mkdir(exist_ok=True)
            ds.save_as(folder / s / f"{sop}.dcm", enforce_file_format=True)
            series.add(s)
        return series

    # --- STOW-RS ----------------------------------------------------------------------------------------
    def store(self, paths: list[Path], study_uid: str) -> list[str]:
        """Store DICOM files into the study; the SOP Instance UIDs stored. Any failed instance is a PacsError."""
        import pydicom

        uid = check_uid(study_uid, "study UID")
        datasets = [pydicom.dcmread(p) for p in paths]
        for p, ds in zip(paths, datasets):
            if str(ds.get("StudyInstanceUID", "")) != uid:
                raise PacsError(f"{p}: StudyInstanceUID {ds.get('StudyInstanceUID')!r} differs from the study it "
                                f"would be stored into ({uid})")
        resp = self._call(f"STOW-RS into study {uid}", self._web.store_instances, datasets, study_instance_uid=uid)
        failed = list(resp.get("FailedSOPSequence", []) or []) if resp is not None else []
        if failed:
            what = ", ".join(f"{it.get('ReferencedSOPInstanceUID', '?')} (reason {it.get('FailureReason', '?')})"
                             for it in failed)
            raise PacsError(f"PACS {self.settings.url}: STOW-RS into study {uid} refused {len(failed)} of "
                            f"{len(datasets)} instances: {what}")
        return [str(ds.SOPInstanceUID) for ds in datasets]
