"""Load time and transferred size of a 512 x 512 x 300 CT in the web viewer, and the page's screenshots.

    .venv/bin/python web/bench_viewer.py [--runs 3] [--out eval/results/web]

The case is eval/bench_findings' benchmark case (TotalSegmentator's example CT and its `total`
segmentation resampled to 512 x 512 x 300, 5 synthetic lesions; built once into .cache/bench), analyzed
by the real server (uvicorn on 127.0.0.1) from its multilabel form. Measured:

- the server's one-time build of the viewer's label volumes (GET /cases/{id}/viewer, first call);
- per page load in headless Chromium (WebGL through SwiftShader, the browser cache disabled): the time
  from pressing "Load case" to the viewer holding all three volumes (Python wall clock), the page's own
  viewer time (GET /viewer + volume download + decode + first draw), and each volume's transferred and
  decoded size from the browser's resource timing;
- screenshots of the page at 1280 x 900 and 1920 x 1080 (a lesion selected, its RECIST axes drawn).

Writes viewer_bench.json and the PNGs into --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKEN = "bench-viewer-token"
FLAGS = ("--headless", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-quic", "--no-first-run", "--force-device-scale-factor=1", "--disable-dev-shm-usage")


def serve(root: Path):
    """The API app under uvicorn in a thread on a loopback port; returns (base URL, stop)."""
    import uvicorn

    from agent.api import ServerSettings, create_app

    app = create_app(ServerSettings(data_root=root, token=TOKEN, analysis_timeout_s=1800))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)

    def stop():
        srv.should_exit = True
        th.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


def browser(width: int, height: int, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for f in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(f)
    d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(1200)  # also bounds each command while the renderer decodes the volumes
    d.command_executor._client_config.timeout = 1200  # selenium's HTTP read timeout to chromedriver (120 s)
    d.set_script_timeout(300)
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return d


def load(d, base: str, case_id: str, timeout_s: float = 600) -> float:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(base + "/")
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.ID, "case-id").send_keys(case_id)
    t0 = time.perf_counter()
    d.find_element(By.ID, "load").click()
    WebDriverWait(d, timeout_s, poll_frequency=0.05, ignored_exceptions=(TimeoutException,)).until(
        lambda _: d.execute_script("return window.radagent.state.loaded"))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "web")
    ap.add_argument("--synthetic", action="store_true",
                    help="the tests' small case instead (tests/cases.build_case: 122 x 101 x 30, 8 lesions); "
                         "writes synthetic_* files")
    a = ap.parse_args(argv)
    if a.synthetic:
        from tests.cases import build_case

        folder = Path(tempfile.mkdtemp(prefix="radagent-web-bench-"))
        case = build_case(folder / "multilabel")
        shape = list(case["hu"].shape)
        meta = {"shape": shape, "spacing_mm": [3.0, 3.0, 3.0], "source": "tests/cases.build_case (TotalSegmentator "
                "example CT, synthetic lesions)"}
        paths = {"ct": "multilabel/ct.nii.gz", "masks": "multilabel"}
        prefix = "synthetic_"
    else:
        from eval.bench_findings import get_case

        folder, meta = get_case()
        paths = {"ct": "multilabel/ct.nii.gz", "masks": "multilabel/seg.nii.gz",
                 "class_map": "multilabel/class_map.json"}
        prefix = ""
    base, stop = serve(folder)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    out: dict = {"case": {"shape": meta["shape"], "spacing_mm": meta["spacing_mm"], "source": meta["source"]},
                 "browser": "Debian chromium (headless), WebGL via SwiftShader: " + " ".join(FLAGS[2:5]),
                 "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core host"}
    try:
        t = time.perf_counter()
        r = httpx.post(f"{base}/cases/from-path?wait=true", headers=auth, timeout=1800, json=paths)
        r.raise_for_status()
        cid = r.json()["id"]
        out["analysis_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        info = httpx.get(f"{base}/cases/{cid}/viewer", headers=auth, timeout=600).json()
        out["label_volumes_first_build_s"] = round(time.perf_counter() - t, 2)
        out["sizes_bytes"] = info["sizes_bytes"]
        findings = httpx.get(f"{base}/cases/{cid}/findings", headers=auth, timeout=60).json()

        runs = []
        for i in range(a.runs):
            with tempfile.TemporaryDirectory() as prof:
                d = browser(1280, 900, Path(prof))
                try:
                    wall = load(d, base, cid)
                    stages = d.execute_script("return window.radagent.state.timings")
                    res = d.execute_script(
                        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/viewer/'))"
                        ".map(e => ({name: e.name.split('/').pop(), transfer: e.transferSize, body: e.encodedBodySize,"
                        " ms: e.duration}))")
                    runs.append({"load_s": round(wall, 2),
                                 "page_viewer_s": round(d.execute_script("return window.radagent.state.timings.viewer_ms")
                                                        / 1000, 2),
                                 "page_stages_s": {k.removesuffix("_ms"): round(v / 1000, 2) for k, v in stages.items()},
                                 "volumes": res})
                    a.out.mkdir(parents=True, exist_ok=True)
                    (a.out / f"{prefix}viewer_bench.json").write_text(json.dumps({**out, "runs": runs}, indent=1))
                    runs[-1]["interaction_s"] = interactions(d, findings)
                    (a.out / f"{prefix}viewer_bench.json").write_text(json.dumps({**out, "runs": runs}, indent=1))
                    if i == 0:
                        shots(d, findings, a.out, prefix)
                finally:
                    d.quit()
        out["runs"] = runs
        out["load_s_median"] = statistics.median(r["load_s"] for r in runs)
        out["transferred_mb"] = round(sum(v["transfer"] for v in runs[0]["volumes"]) / 1e6, 2)
    finally:
        stop()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{prefix}viewer_bench.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


def interactions(d, findings: dict) -> dict:
    """Seconds the page takes (JS call until drawn) to select a lesion (recolours the lesion labels),
    switch the window preset, and step one slice."""
    out = {}
    from selenium.common.exceptions import TimeoutException

    for name, call in (("select_lesion", f"window.radagent.goToLesion('{findings['lesions'][0]['id']}')"),
                       ("next_slice", "window.radagent.state.nv.moveCrosshairInVox(0, 0, 1)"),
                       ("window_preset", "window.radagent.setPreset('liver')")):
        try:
            out[name] = round(d.execute_script(f"const t = performance.now(); {call}; window.radagent.state.nv."
                                               "drawScene(); return (performance.now() - t) / 1000"), 3)
        except TimeoutException:
            out[name] = "over 300 s (script timeout)"
            break
    return out  # the liver window stays (each preset change redoes every layer: minutes under SwiftShader here)


def shots(d, findings: dict, out: Path, prefix: str) -> None:
    """Screenshots of the loaded page (liver window, set by ``interactions``): the largest lesion selected
    (axial), all three views, and the 1920 x 1080 layout."""
    from selenium.webdriver.common.by import By

    out.mkdir(parents=True, exist_ok=True)
    big = max(findings["lesions"], key=lambda x: x["long_axis_mm"])
    d.find_element(By.CSS_SELECTOR, "button.view[data-view=axial]").click()
    d.find_element(By.CSS_SELECTOR, f"#lesion-table tr[data-lesion={big['id']}]").click()
    time.sleep(0.5)
    d.save_screenshot(str(out / f"{prefix}page_1280_axial_lesion.png"))
    d.find_element(By.CSS_SELECTOR, "button.view[data-view=multiplanar]").click()
    time.sleep(0.5)
    d.save_screenshot(str(out / f"{prefix}page_1280_three_views_liver_window.png"))
    d.set_window_size(1920, 1080)
    time.sleep(1.0)
    d.find_element(By.CSS_SELECTOR, "button.view[data-view=axial]").click()
    d.find_element(By.CSS_SELECTOR, f"#lesion-table tr[data-lesion={big['id']}]").click()
    time.sleep(0.5)
    d.save_screenshot(str(out / f"{prefix}page_1920_axial_lesion.png"))


if __name__ == "__main__":
    raise SystemExit(main())
