"""HTTP API and web chat page over the case service (agent.case): what `radagent serve` runs.

``create_app(settings)`` builds the FastAPI app. Every case lives in its own folder
``<cases_dir>/<id>/`` (id: 32 random hex digits) holding ``case.json`` (status, inputs),
``input/`` (uploads only) and ``out/`` (findings.json, findings.md, key_images/, reports/).

Endpoints (all but ``/``, ``/static/*`` and ``/health`` need ``Authorization: Bearer <token>``)::

    GET    /                                    web page shell (no data in it)
    GET    /static/{app.js,app.css}             its script and style
    GET    /health                              liveness
    GET    /openapi.json                        OpenAPI schema
    GET    /cases                               list cases
    POST   /cases                               multipart upload: ct (.nii/.nii.gz), masks (.nii/.nii.gz or
                                                .zip of mask files), optional class_map (.json)
    POST   /cases/from-path                     JSON {ct, masks, class_map?}: paths inside the data root
    GET    /cases/{id}                          status (queued, running, done, failed) and summary
    DELETE /cases/{id}                          remove the case folder
    GET    /cases/{id}/findings?format=json|md  findings.json / findings.md
    GET    /cases/{id}/lesions                  lesion summaries with their key-image URLs
    GET    /cases/{id}/lesions/{lesion}/key-image   PNG
    GET    /cases/{id}/report?format=md|html|json&engine=auto|template|llm&style=...
    POST   /cases/{id}/ask                      one question: deterministic (reasoning.vqa) or the agent
    POST   /cases/{id}/chat                     Server-Sent Events: session, token..., final (or error)

Both create endpoints answer 202 at once and analyze in a worker thread; ``?wait=true`` answers
when the analysis ends (201, or the error: an InputError is 422 and the case is removed).

Security: constant-time bearer-token check in an ASGI guard in front of the app (401 before any
body is read; the route dependency checks again and documents it in the schema); non-upload
bodies capped at 1 MiB; the upload body is counted while it streams and refused with 413 past
``max_upload_mb`` (Content-Length checked first; zip members are counted again after
decompression); an upload is staged in a hidden folder that is removed on any error;
server-side paths must resolve (symlinks followed) inside the data root and outside the case
storage, and every symlink inside a referenced folder too; case and lesion ids are checked
against patterns and files are only served from the case's own folder; server paths are replaced
by display names in findings and error messages; the page is served with a strict CSP and never
puts the token in a URL.
"""

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
