"""The reading page in headless Chromium (Debian chromium + chromium-driver, driven by selenium with the
driver path given, so selenium never downloads anything) against the real server (uvicorn on a free
loopback port): enter the token and a case id, the NiiVue viewer loads the CT and the organ and lesion
label volumes (WebGL through SwiftShader: --use-gl=angle --use-angle=swiftshader --enable-unsafe-swiftshader),
scroll, switch window preset, toggle overlays, click each lesion row and each report sentence citing a
lesion (the viewer's axial slice, read from the page state, must be the lesion's key slice, and a
screenshot must show the highlighted lesion inside the lesion's box and its RECIST axes), ask a
question and follow its cited lesion, and check that no request left 127.0.0.1.

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/setup_browser.sh installs them); without
them the tests skip through require("browser", ...), and fail where RADAGENT_REQUIRE names browser (CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import httpx
import pytest

from agent.api import ServerSettings, create_app
from tests.cases import VOX, build_case
from tests.require import require

CHROMIUM = os.environ.get("RADAGENT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RADAGENT_CHROMEDRIVER", "/usr/bin/chromedriver")
TOKEN = "web-test-token-51c0"
QUESTION = "What is the volume of the largest lesion in the left kidney?"


def _browser_or_skip() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    if not missing:
        return
    require("browser", f"headless Chromium not installed ({', '.join(missing)} missing): run scripts/setup_browser.sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _browser_or_skip()
    root = tmp_path_factory.mktemp("web_root")
    yield from _serve(root, build_case(root / "case1"), ServerSettings(data_root=root, token=TOKEN))


def _serve(root, case, settings):
    """The app under uvicorn in a thread, on a loopback socket bound here (no port race)."""
    import uvicorn

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    class Server(uvicorn.Server):
        """Sets ``startup_done`` when startup is over, started or failed: the test waits on it."""

        startup_done = threading.Event()

        async def startup(self, sockets=None):
            try:
                await super().startup(sockets=sockets)
            finally:
                self.startup_done.set()

    srv = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    assert srv.startup_done.wait(timeout=20) and srv.started, "uvicorn did not start"
    r = httpx.post(f"{base}/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 201, r.text
    yield {"base": base, "case_id": r.json()["id"], "n_lesions": r.json()["n_lesions"], "case": case}
    srv.should_exit = True
    th.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium_profile")
    for flag in ("--headless", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-quic", "--no-first-run", "--force-device-scale-factor=1",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _ask_in_page(d, base, case_id, question, timeout_s):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(base + "/")
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.ID, "case-id").send_keys(case_id)
    d.find_element(By.ID, "load").click()
    wait = WebDriverWait(d, 30, poll_frequency=0.1)
    wait.until(lambda _: d.execute_script("return window.radagent.state.loaded"))
    d.find_element(By.ID, "question").send_keys(question)
    d.find_element(By.ID, "ask").click()
    WebDriverWait(d, timeout_s, poll_frequency=0.2).until(
        lambda _: d.find_elements(By.CSS_SELECTOR, "#chat-log .msg.answer[data-final='1']"))
    return d.find_element(By.CSS_SELECTOR, "#chat-log .msg.answer").text


@pytest.mark.llm_server
def test_page_chat_through_the_agent_on_the_real_llm_server(vllm_server, browser, tmp_path_factory):
    """With `serve --llm`, the page's chat goes through the tool-calling agent on the real vLLM
    server; the answer shown is grounded (or the deterministic fallback) and equals the truth."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("web_llm_root")
    case = build_case(root / "case1")
    settings = ServerSettings(data_root=root, token=TOKEN, llm_url=vllm_server.base_url, model=vllm_server.model)
    gen = _serve(root, case, settings)
    srv = next(gen)
    try:
        want = case["truth"]["kidney_tumor"]["mask"].sum() * VOX**3 / 1000
        answer = _ask_in_page(browser, srv["base"], srv["case_id"], QUESTION, timeout_s=300)
        assert f"{want:.3f}" in answer, answer
    finally:
        gen.close()


def _load(d, base, case_id, token=TOKEN):
    from selenium.webdriver.common.by import By

    d.get(base + "/")
    d.find_element(By.ID, "token").clear()
    d.find_element(By.ID, "token").send_keys(token)
    d.find_element(By.ID, "case-id").clear()
    d.find_element(By.ID, "case-id").send_keys(case_id)
    d.find_element(By.ID, "load").click()


def _wait(d, cond, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda _: d.execute_script(cond))


def _slice(d) -> int:
    return d.execute_script("return window.radagent.sliceIndex()")


def _stage_pixels(d, screenshot=False):
    """The viewer as shown, an RGB array in CSS pixels (device scale 1): Chromium's screenshot of the
    #stage element, or (faster under SwiftShader, ~0.1 s against ~7 s) the WebGL canvas read back right
    after a draw with the RECIST canvas composited over it, as the page stacks them."""
    import base64
    import io

    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    if screenshot:
        d.execute_script("window.radagent.state.nv.drawScene()")
        png = d.find_element(By.ID, "stage").screenshot_as_png
    else:
        url = d.execute_script(
            "const nv = window.radagent.state.nv; nv.drawScene();"
            "const gl = document.getElementById('gl'), ax = document.getElementById('axes');"
            "const c = document.createElement('canvas'); c.width = gl.width; c.height = gl.height;"
            "const x = c.getContext('2d'); x.drawImage(gl, 0, 0); x.drawImage(ax, 0, 0);"
            "return c.toDataURL('image/png');")
        png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _lesion_pixels(rgb):
    """The lesion overlay (230/40/40 at opacity 0.55 over grey, and over an organ tint of opacity 0.3):
    red well above green, green about blue. Organ tints alone (R - G <= 36) and grey never pass."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - g > 70) & (abs(g - b) < 25)


def _frame_pixels(rgb):
    """The selected lesion's frame (opaque #ffe600 on the 2D canvas over the viewer)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 230) & (g > 200) & (b < 60)


def _axis_pixels(rgb):
    """The RECIST long axis (pure green 0/255/102, drawn opaque on the 2D canvas over the viewer)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (g > 200) & (r < 90) & (b < 160)


def _box_mask(shape, box, pad):
    import numpy as np

    m = np.zeros(shape[:2], dtype=bool)
    top, bottom = max(0, int(box["top"] - pad)), int(box["bottom"] + pad) + 1
    left, right = max(0, int(box["left"] - pad)), int(box["right"] + pad) + 1
    m[top:bottom, left:right] = True
    return m


@pytest.fixture(scope="module")
def findings(server):
    r = httpx.get(f"{server['base']}/cases/{server['case_id']}/findings",
                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200
    return r.json()


@pytest.fixture(scope="module")
def page(server, browser):
    """The page with the case loaded (after a wrong token was refused)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    _load(d, server["base"], server["case_id"], token="not-the-token")
    WebDriverWait(d, 30).until(lambda _: "bearer token" in d.find_element(By.ID, "status").text)
    assert d.find_elements(By.CSS_SELECTOR, "#lesion-table tbody tr") == []
    assert d.execute_script("return window.radagent.state.loaded") is False
    _load(d, server["base"], server["case_id"])
    _wait(d, "return window.radagent.state.loaded && document.getElementById('report-body').dataset.ready === '1'")
    return d


def test_viewer_loads_scrolls_windows_and_toggles(page, findings):
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = page
    assert d.title == "radagent"
    n = findings["study"]["shape"][findings["study"]["axial_axis"]]
    # the viewer holds the CT and both label volumes on the CT's grid
    dims = d.execute_script("return window.radagent.state.nv.volumes.map(v => Array.from(v.hdr.dims.slice(1, 4)))")
    assert dims == [list(findings["study"]["shape"])] * 3
    rows = d.find_elements(By.CSS_SELECTOR, "#lesion-table tbody tr")
    assert [r.get_attribute("data-lesion") for r in rows] == [x["id"] for x in findings["lesions"]]
    assert [r.get_attribute("data-organ") for r in d.find_elements(By.CSS_SELECTOR, "#organ-table tbody tr")] == \
        [o["name"] for o in findings["organs"]]

    # scroll with the keyboard on the focused viewer, and with the labelled slider
    d.execute_script("window.radagent.setView('axial')")
    stage = d.find_element(By.ID, "stage")
    stage.click()
    k0 = _slice(d)
    stage.send_keys(Keys.ARROW_UP)
    assert _slice(d) == min(k0 + 1, n - 1)
    stage.send_keys(Keys.PAGE_DOWN)
    assert _slice(d) == max(min(k0 + 1, n - 1) - 10, 0)
    assert d.switch_to.active_element == stage  # keyboard focus stays on the viewer
    slider = d.find_element(By.ID, "slice")
    assert d.find_element(By.CSS_SELECTOR, "label[for=slice]").text == "Axial slice"
    slider.send_keys(Keys.HOME)
    assert _slice(d) == 0
    slider.send_keys(Keys.END)
    assert _slice(d) == n - 1

    # window presets: the CT's display range is level -/+ width/2 of perception.registry.WINDOWS
    for name, (w, lvl) in {"lung": (1500.0, -600.0), "bone": (2000.0, 500.0), "liver": (150.0, 60.0),
                           "abdomen": (400.0, 40.0)}.items():
        d.find_element(By.CSS_SELECTOR, f"button.preset[data-preset={name}]").click()
        lo, hi = d.execute_script("const v = window.radagent.state.nv.volumes[0]; return [v.cal_min, v.cal_max]")
        assert (lo, hi) == (lvl - w / 2, lvl + w / 2), name
        assert d.find_element(By.CSS_SELECTOR, f"button.preset[data-preset={name}]").get_attribute("aria-pressed") == "true"

    # views
    for view, st in (("coronal", 1), ("sagittal", 2), ("multiplanar", 3), ("axial", 0)):
        d.find_element(By.CSS_SELECTOR, f"button.view[data-view={view}]").click()
        assert d.execute_script("return window.radagent.state.nv.opts.sliceType") == st

    # overlay toggles: the lesion's overlay and its RECIST axis disappear from its box and come back
    les = findings["lesions"][0]
    rows[0].click()
    box = d.execute_script("return window.radagent.lesionCanvasBox(arguments[0])", les["id"])
    shot = _stage_pixels(d, screenshot=True)
    inside = _box_mask(shot.shape, box, pad=2)
    assert _lesion_pixels(shot)[inside].sum() > 0 and _axis_pixels(shot)[inside].sum() > 0
    # the canvas read-back used below shows the same overlay and frame as the screenshot, and the same
    # axes up to the anti-aliased edge pixels of the lines (compositing differs there)
    rgb = _stage_pixels(d)
    for pixels in (_lesion_pixels, _frame_pixels):
        assert np.array_equal(pixels(rgb), pixels(shot)), pixels.__name__
    a, b = _axis_pixels(rgb), _axis_pixels(shot)
    assert (a & b).sum() >= 0.8 * (a | b).sum() > 0
    d.find_element(By.ID, "show-lesions").click()
    assert d.execute_script("return window.radagent.state.nv.volumes[2].opacity") == 0
    assert _lesion_pixels(_stage_pixels(d))[inside].sum() == 0
    d.find_element(By.ID, "show-axes").click()
    assert _axis_pixels(_stage_pixels(d))[inside].sum() == 0
    d.find_element(By.ID, "show-lesions").click()
    d.find_element(By.ID, "show-axes").click()
    rgb = _stage_pixels(d)
    assert _lesion_pixels(rgb)[inside].sum() > 0 and _axis_pixels(rgb)[inside].sum() > 0
    d.find_element(By.ID, "show-organs").click()
    assert d.execute_script("return window.radagent.state.nv.volumes[1].opacity") == 0
    d.find_element(By.ID, "show-organs").click()
    assert d.execute_script("return window.radagent.state.nv.volumes[1].opacity") > 0


@pytest.mark.slow
def test_each_lesion_row_moves_the_viewer_to_its_key_slice(page, findings):
    """Click (or Enter on) each row: the viewer's axial slice is the lesion's key slice
    (Findings key_slice.index, the 0-based voxel index of the RECIST slice); in a screenshot, the lesion
    overlay and its long axis are in the lesion's box, and the selection frame surrounds that box only."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = page
    d.find_element(By.CSS_SELECTOR, "button.view[data-view=axial]").click()
    n = findings["study"]["shape"][findings["study"]["axial_axis"]]
    for i, les in enumerate(findings["lesions"]):
        row = d.find_element(By.CSS_SELECTOR, f"#lesion-table tbody tr[data-lesion={les['id']}]")
        if i % 2:
            row.click()
        else:
            d.execute_script("arguments[0].focus()", row)
            row.send_keys(Keys.ENTER)
        assert les["key_slice"]["index"] == les["axial_slice"]
        assert _slice(d) == les["key_slice"]["index"], les["id"]
        assert row.get_attribute("aria-selected") == "true"
        assert d.execute_script("return window.radagent.state.selected") == les["id"]
        box = d.execute_script("return window.radagent.lesionCanvasBox(arguments[0])", les["id"])
        rgb = _stage_pixels(d)
        inside = _box_mask(rgb.shape, box, pad=2)
        assert _lesion_pixels(rgb)[inside].sum() > 0, les["id"]  # its overlay is in its box
        assert _axis_pixels(rgb)[inside].sum() > 0, les["id"]  # and its long axis
        frame = _frame_pixels(rgb)  # the highlight frames it: around the box, nowhere else
        assert frame.sum() > 0 and frame[~_box_mask(rgb.shape, box, pad=12)].sum() == 0, les["id"]
        # one slice away the axes are gone, unless another lesion's key slice is there
        nxt = les["axial_slice"] + 1 if les["axial_slice"] + 1 < n else les["axial_slice"] - 1
        d.find_element(By.ID, "stage").send_keys(Keys.ARROW_UP if nxt > les["axial_slice"] else Keys.ARROW_DOWN)
        assert _slice(d) == nxt
        if not any(x["axial_slice"] == nxt for x in findings["lesions"]):
            assert _axis_pixels(_stage_pixels(d)).sum() == 0, les["id"]


def test_report_sentences_and_chat_answers_move_to_the_cited_lesion(page, findings, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = page
    key = {x["id"]: x["key_slice"]["index"] for x in findings["lesions"]}
    links = d.find_elements(By.CSS_SELECTOR, "#report-body .sentence.link")
    cited = {s.get_attribute("data-lesion") for s in links}
    assert cited == set(key), cited  # every lesion is cited by some sentence
    first = {}
    for s in links:
        first.setdefault(s.get_attribute("data-lesion"), s)
    for lid in sorted(first, reverse=True):
        s = first[lid]
        assert lid in s.get_attribute("data-findings").split()
        d.execute_script("arguments[0].scrollIntoView()", s)
        s.click()
        assert _slice(d) == key[lid], (lid, s.text)
        assert d.find_element(By.CSS_SELECTOR, f"#lesion-table tr[data-lesion={lid}]").get_attribute("aria-selected") \
            == "true"
        assert "cited" in s.get_attribute("class")
    # sentences citing no lesion are plain text, not links
    plain = d.find_elements(By.CSS_SELECTOR, "#report-body .sentence:not(.link)")
    assert plain and all(p.get_attribute("role") is None for p in plain)

    # ask; the answer streams in, equals the truth, and its cited lesion is a link to its key slice
    want = server["case"]["truth"]["kidney_tumor"]["mask"].sum() * VOX**3 / 1000
    d.find_element(By.ID, "question").send_keys(QUESTION)
    d.find_element(By.ID, "ask").click()
    WebDriverWait(d, 30).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#chat-log .msg.answer[data-final='1']"))
    answer = d.find_element(By.CSS_SELECTOR, "#chat-log .msg.answer")
    assert f"{want:.3f} mL" in answer.text, answer.text
    assert d.find_element(By.CSS_SELECTOR, "#chat-log .msg.question").text == QUESTION
    kidney = [x["id"] for x in findings["lesions"] if x["organ"] == "kidney_left"]
    buttons = answer.find_elements(By.CSS_SELECTOR, "button.cite")
    assert [b.get_attribute("data-lesion") for b in buttons] == kidney[:1]
    buttons[0].click()
    assert _slice(d) == key[kidney[0]]


def test_nothing_leaves_loopback_and_no_console_errors(page, server):
    """Every network request of the browser (Chromium's network log: page, script, volumes, API) went to
    the test server on 127.0.0.1; data:/blob: URLs stay inside the page and chrome:// ones inside the
    browser (its new-tab page)."""
    import json
    from urllib.parse import urlsplit

    d = page
    sent = [json.loads(e["message"])["message"] for e in d.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in sent if m.get("method") == "Network.requestWillBeSent"]
    assert any(u.endswith("/viewer/ct.nii.gz") for u in urls) and any(u.endswith("/static/app.js") for u in urls)
    inside = ("data", "blob", "chrome", "chrome-untrusted", "about")
    remote = [u for u in urls if urlsplit(u).scheme not in inside and urlsplit(u).hostname != "127.0.0.1"]
    assert remote == [], remote
    entries = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert entries and all(urlsplit(u).hostname == "127.0.0.1" or urlsplit(u).scheme in ("data", "blob")
                           for u in entries), entries
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "not-the-token" not in e["message"]
              and "401" not in e["message"]]
    assert severe == [], severe


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_layout_at_reading_room_widths(page, size):
    """Viewer and side panel side by side, nothing wider than the window, the viewer the larger part;
    keyboard focus is visible (an outline) on a lesion row."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d = page
    d.set_window_size(*size)
    try:
        # the resize reaches the page asynchronously: wait for it, then for a frame laid out at that width
        WebDriverWait(d, 10).until(lambda _: d.execute_script("return window.innerWidth") == size[0])
        d.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        inner_w = d.execute_script("return window.innerWidth")
        assert d.execute_script("return document.documentElement.scrollWidth") <= inner_w
        v = d.find_element(By.ID, "viewer").rect
        s = d.find_element(By.ID, "side").rect
        assert v["x"] + v["width"] <= s["x"] and abs(v["y"] - s["y"]) < 5  # side by side
        assert v["width"] > s["width"] and d.find_element(By.ID, "stage").rect["height"] >= 300
        row = d.find_element(By.CSS_SELECTOR, "#lesion-table tbody tr")
        d.execute_script("document.getElementById('slice').focus()")
        for _ in range(5):  # Tab from the slider reaches the first lesion row
            ActionChains(d).send_keys(Keys.TAB).perform()
            if d.switch_to.active_element == row:
                break
        assert d.switch_to.active_element == row
        assert d.execute_script("const e = document.activeElement; return e.matches(':focus-visible') && "
                                "getComputedStyle(e).outlineStyle !== 'none' && getComputedStyle(e).outlineWidth")
    finally:
        d.set_window_size(1280, 900)
