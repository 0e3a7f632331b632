"""The web chat page in headless Chromium (Debian chromium + chromium-driver, driven by selenium
with the driver path given, so selenium never downloads anything) against the real server
(uvicorn on a free loopback port): enter the token and a case id, see every lesion's key image
load, ask a question, see the answer stream in.

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
    yield dict(base=base, case_id=r.json()["id"], n_lesions=r.json()["n_lesions"], case=case)
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
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
    wait.until(lambda _: d.execute_script(
        "const imgs = [...document.querySelectorAll('#lesions img')];"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"))
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


def test_page_shows_key_images_and_answers(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.get(server["base"] + "/")
    assert d.title == "radagent"
    wait = WebDriverWait(d, 30, poll_frequency=0.1)

    # a wrong token: the page says so, shows nothing
    d.find_element(By.ID, "token").send_keys("not-the-token")
    d.find_element(By.ID, "case-id").send_keys(server["case_id"])
    d.find_element(By.ID, "load").click()
    wait.until(lambda _: "bearer token" in d.find_element(By.ID, "status").text)
    assert d.find_elements(By.CSS_SELECTOR, "#lesions img") == []

    d.find_element(By.ID, "token").clear()
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.ID, "load").click()
    n = server["n_lesions"]
    assert n > 0
    # every lesion's key image decoded by the browser (naturalWidth > 0), beside its caption
    wait.until(lambda _: d.execute_script(
        "const imgs = [...document.querySelectorAll('#lesions img')];"
        "return imgs.length === arguments[0] && imgs.every(i => i.complete && i.naturalWidth > 0);", n))
    figs = d.find_elements(By.CSS_SELECTOR, "#lesions figure")
    assert [f.get_attribute("data-lesion") for f in figs] == [f"L{i}" for i in range(1, n + 1)]
    assert "mL" in figs[0].find_element(By.TAG_NAME, "figcaption").text
    width = d.execute_script("return document.querySelector('#lesions img').naturalWidth")
    assert width >= 64

    # ask; the answer streams into the chat log
    want = server["case"]["truth"]["kidney_tumor"]["mask"].sum() * VOX**3 / 1000
    d.find_element(By.ID, "question").send_keys(QUESTION)
    d.find_element(By.ID, "ask").click()
    wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#chat-log .msg.answer[data-final='1']"))
    answer = d.find_element(By.CSS_SELECTOR, "#chat-log .msg.answer").text
    assert f"{want:.3f} mL" in answer, answer
    assert d.find_element(By.CSS_SELECTOR, "#chat-log .msg.question").text == QUESTION
    # the page reached the server with the token in a header only; no console errors (CSP included)
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "not-the-token" not in e["message"]
              and "401" not in e["message"]]
    assert severe == [], severe
