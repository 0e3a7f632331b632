"""The committed page script (agent/web/app.js) is the esbuild bundle of the committed sources: its
banner carries the SHA-256 of web/src/*.js, web/package-lock.json and web/build.mjs, which this test
recomputes the way web/build.mjs does (no node needed). Editing a source without `make web` fails here."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
BUNDLE = ROOT / "agent" / "web" / "app.js"


def inputs_sha256(web: Path) -> str:
    h = hashlib.sha256()
    names = [f"src/{p.name}" for p in sorted((web / "src").glob("*.js"), key=lambda p: p.name)]
    for name in names + ["package-lock.json", "build.mjs"]:
        h.update(name.encode() + b"\n")
        h.update((web / name).read_bytes())
    return h.hexdigest()


def banner() -> str:
    with BUNDLE.open("rb") as f:
        return f.read(600).decode("utf-8", "replace").split("*/", 1)[0]


def test_bundle_built_from_the_committed_sources():
    m = re.search(r"inputs-sha256: ([0-9a-f]{64})", banner())
    assert m, f"{BUNDLE}: no inputs-sha256 banner; rebuild with `make web`"
    assert m.group(1) == inputs_sha256(WEB), f"{BUNDLE} is stale: rebuild with `make web` and commit it"


def test_banner_names_the_locked_niivue_version():
    lock = json.loads((WEB / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/@niivue/niivue"]["version"]
    assert json.loads((WEB / "package.json").read_text())["dependencies"]["@niivue/niivue"] == version
    assert f"@niivue/niivue {version} " in banner()


def test_a_changed_source_is_seen(tmp_path):
    """The check can fail: one byte more in a source changes the hash."""
    import shutil

    shutil.copytree(WEB / "src", tmp_path / "src")
    for name in ("package-lock.json", "build.mjs"):
        shutil.copy(WEB / name, tmp_path / name)
    before = inputs_sha256(tmp_path)
    assert before == inputs_sha256(WEB)
    with (tmp_path / "src" / "app.js").open("a") as f:
        f.write("\n")
    assert inputs_sha256(tmp_path) != before
