"""The operator web console (`/ui/` on the service listener) in a real
browser: Debian's headless Chromium driven by selenium through
/usr/bin/chromedriver, against the real acme-ca process.

The seed's flow: a requester signs in, issues a certificate for an entity
with an IP address, requests and downloads the zip (checked with openssl);
an agent signs in, approves a pending device request, revokes the first
certificate with a reason and sees OCSP say revoked (the page, then the
OCSP responder itself through openssl); a requester of another team sees
neither certificate. Each step saves a screenshot under
target/test-artifacts/console/.

Nothing here waits for a fixed time: every wait is for a page element or a
file, with a deadline only as a bound.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, ServerError
from test_service import TOKENS, ServiceAcmeCa, make_csr, split_pems

# selenium is pinned in requirements.txt: a missing one fails, never skips.
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = pytest.mark.acme_ca_only("the console is acme-ca's own")

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "target" / "test-artifacts" / "console"
ENTITY = "fde3263e-70b8-4ce9-9f3c-4a203a0dcdf5"


def tok(name: str) -> str:
    return TOKENS[name][1]


class ConsoleAcmeCa(ServiceAcmeCa):
    """test_service's server, with download tokens that outlive a slow
    step of the browser (test_service uses 3 s to test their expiry)."""

    name = "acme-ca-console"

    def write_config(self) -> None:
        super().write_config()
        text = self.config.read_text()
        assert 'download_token_lifetime = "3s"' in text
        self.config.write_text(text.replace('download_token_lifetime = "3s"',
                                            'download_token_lifetime = "5m"'))


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    base = tmp_path_factory.mktemp("acme-ca-console")
    srv = ConsoleAcmeCa(base / "data", base / "logs", hooks=[])
    try:
        try:
            srv.start()
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(srv.service_url + "/ui/signin", verify=srv.root_pem, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console-downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (Debian's chromium and "
                    f"chromium-driver; scripts/test installs them)", pytrace=False)
    # Selenium must not look for (or fetch) a browser or driver of its own.
    os.environ["SE_OFFLINE"] = "true"
    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1100,900"):
        opts.add_argument(flag)
    # The service's HTTPS certificate comes from the test CA, which this
    # fresh profile does not trust.
    opts.accept_insecure_certs = True
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
    })
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(executable_path=CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The browser on the console, with a screenshot per step."""

    def __init__(self, driver, svc):
        self.d = driver
        self.base = svc.service_url
        self.step = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def wait(self, cond, timeout: float = 20):
        return WebDriverWait(self.d, timeout).until(cond)

    def shot(self, name: str) -> None:
        self.step += 1
        path = ARTIFACTS / f"{self.step:02d}-{name}.png"
        assert self.d.save_screenshot(str(path)), path

    def open(self, path: str) -> None:
        self.d.get(self.base + path)

    def h1(self) -> str:
        return self.d.find_element(By.TAG_NAME, "h1").text

    def flash(self) -> str:
        return self.d.find_element(By.CSS_SELECTOR, ".flash").text

    def all_controls_labelled(self) -> None:
        """Every visible form control has a <label for> (keyboard and
        screen-reader use)."""
        for el in self.d.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
            if el.get_attribute("type") == "hidden":
                continue
            el_id = el.get_attribute("id")
            assert el_id, f"a control without an id on {self.d.current_url}"
            labels = self.d.find_elements(By.CSS_SELECTOR, f"label[for='{el_id}']")
            assert labels, f"#{el_id} has no label on {self.d.current_url}"

    def no_csp_violations(self) -> None:
        logs = self.d.get_log("browser")
        bad = [e for e in logs if "Content Security Policy" in e.get("message", "")
               or "Refused to" in e.get("message", "")]
        assert not bad, bad

    def sign_in(self, who: str) -> None:
        self.open("/ui/")
        # No session: the sign-in page.
        self.wait(ec.url_contains("/ui/signin"))
        assert self.h1() == "Sign in"
        self.all_controls_labelled()
        # By keyboard: the token field has focus; type, then Enter.
        active = self.d.switch_to.active_element
        assert active.get_attribute("id") == "token"
        active.send_keys(tok(who) + Keys.ENTER)
        self.wait(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".who"), who))
        assert tok(who) not in self.d.page_source
        assert tok(who) not in self.d.current_url
        # The token is nowhere the page's script (there is none) or another
        # site could read it.
        assert self.d.execute_script("return window.localStorage.length") == 0
        assert self.d.execute_script("return document.cookie") == "", "the cookie is HttpOnly"
        cookies = {c["name"]: c for c in self.d.get_cookies()}
        c = cookies["__Host-acme-ca-console"]
        assert c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict", c

    def sign_out(self) -> None:
        self.d.find_element(By.CSS_SELECTOR, "form.signout button").click()
        self.wait(ec.url_contains("/ui/signin"))
        self.open("/ui/certs")
        self.wait(ec.url_contains("/ui/signin"))


def wait_for_file(folder: Path, suffix: str, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while True:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done:
            return done[0]
        assert time.monotonic() < deadline, f"no {suffix} in {list(folder.iterdir())}"
        time.sleep(0.1)


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def test_seed_flow_in_chromium(svc, browser, downloads, tmp_path):
    ui = Console(browser, svc)

    # --- a requester issues a certificate for an entity with an IP address
    ui.sign_in("alice")
    ui.shot("requester-dashboard")
    ui.open("/ui/issue")
    ui.d.find_element(By.LINK_TEXT, "server").click()
    ui.wait(ec.presence_of_element_located((By.ID, "entity_id")))
    ui.all_controls_labelled()
    ui.d.find_element(By.ID, "entity_id").send_keys(ENTITY)
    ui.d.find_element(By.ID, "names").send_keys("backend-1.example.com")
    # A bad address first: the server's error shows next to that field.
    ui.d.find_element(By.ID, "ip_addresses").send_keys("192.168.100.400")
    Select(ui.d.find_element(By.ID, "key")).select_by_value("ec-256")
    ui.d.find_element(By.ID, "issue").click()
    err = ui.wait(ec.presence_of_element_located((By.ID, "ip_addresses-error")))
    assert "is not an IP address" in err.text
    assert ui.d.find_element(By.ID, "ip_addresses").get_attribute("aria-invalid") == "true"
    ui.shot("issue-form-error")
    ip = ui.d.find_element(By.ID, "ip_addresses")
    ip.clear()
    ip.send_keys("192.168.100.4")
    ui.d.find_element(By.ID, "issue").click()
    ui.wait(ec.url_contains("/ui/certs/"))
    serial = ui.d.current_url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f]+", serial), serial
    assert "Issued certificate" in ui.flash()
    about = ui.d.find_element(By.TAG_NAME, "dl").text
    assert "192.168.100.4" in about and "backend-1.example.com" in about and ENTITY in about
    renew = ui.d.find_element(By.ID, "renew")
    assert not renew.is_enabled(), "renewal waits for its window"
    assert "The renewal window opens at" in ui.d.find_element(By.ID, "renew-why").text
    ui.all_controls_labelled()
    ui.shot("issued-certificate")

    # --- request the download, then download the zip
    ui.d.find_element(By.ID, "fmt-zip").click()
    ui.d.find_element(By.ID, "request-download").click()
    button = ui.wait(ec.element_to_be_clickable((By.ID, "download")))
    assert "download is ready" in ui.d.find_element(By.CSS_SELECTOR, ".card.ready").text
    ui.shot("download-ready")
    button.click()
    zpath = wait_for_file(downloads, f"{serial}.zip")
    with zipfile.ZipFile(zpath) as z:
        assert sorted(z.namelist()) == ["ca.pem", "cert.pem", "key.pem"]
        z.extractall(tmp_path)
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    res = openssl("verify", "-CAfile", svc.root_pem, "-untrusted", str(ca), str(cert))
    assert res.returncode == 0 and res.stdout.strip().endswith(": OK"), res.stdout + res.stderr
    text = openssl("x509", "-in", str(cert), "-noout", "-text").stdout
    assert "IP Address:192.168.100.4" in text and "DNS:backend-1.example.com" in text, text
    assert openssl("x509", "-in", str(cert), "-noout", "-pubkey").stdout == \
        openssl("pkey", "-in", str(key), "-pubout").stdout, "key.pem is the certificate's key"

    # --- the same requester files a device request (manual approval)
    ui.open("/ui/issue/device")
    ui.d.find_element(By.ID, "entity_id").send_keys("thing-42")
    ui.d.find_element(By.ID, "common_name").send_keys("thing-42")
    ui.d.find_element(By.ID, "issue").click()
    ui.wait(ec.url_contains("/ui/requests"))
    m = re.search(r"Request (\S+) is pending", ui.flash())
    assert m, ui.flash()
    request_id = m.group(1)
    ui.shot("device-request-pending")
    ui.no_csp_violations()
    ui.sign_out()

    # --- an agent approves it, then revokes the first certificate
    ui.sign_in("ann")
    ui.open("/ui/requests")
    ui.all_controls_labelled()
    ui.shot("agent-queue")
    ui.d.find_element(By.ID, f"approve-{request_id}").click()
    ui.wait(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Approved request"))
    m = re.search(r"certificate (\S+) issued", ui.flash())
    assert m, ui.flash()
    device_serial = m.group(1)
    ui.shot("agent-approved")
    ui.open(f"/ui/certs/{serial}")
    Select(ui.d.find_element(By.ID, "reason")).select_by_value("keyCompromise")
    ui.d.find_element(By.ID, "revoke").click()
    ui.wait(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Revoked."))
    about = ui.d.find_element(By.TAG_NAME, "dl").text
    assert re.search(r"OCSP status\s+revoked at \S+ \(keyCompromise\)", about), about
    ui.shot("agent-revoked")
    # The OCSP responder says so too.
    intermediate = tmp_path / "intermediate.pem"
    intermediate.write_text(split_pems(ca.read_text())[0])
    url = openssl("x509", "-in", str(cert), "-noout", "-ocsp_uri").stdout.strip()
    res = openssl("ocsp", "-issuer", str(intermediate), "-cert", str(cert), "-url", url,
                  "-CAfile", svc.root_pem, "-resp_text", "-timeout", "20")
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Response verify OK" in out, out
    assert re.search(rf"^{re.escape(str(cert))}: revoked$", out, re.M), out
    assert "Reason: keyCompromise" in out, out
    ui.open("/ui/")
    ui.wait(ec.presence_of_element_located((By.ID, "issued-chart")))
    assert int(ui.d.find_element(By.ID, "count-revoked").text) >= 1
    ui.shot("agent-dashboard")
    ui.no_csp_violations()
    ui.sign_out()

    # --- a requester of another team sees neither certificate
    ui.sign_in("bob")
    ui.open("/ui/certs")
    listing = ui.d.page_source
    assert serial not in listing and device_serial not in listing
    for s in (serial, device_serial):
        ui.open(f"/ui/certs/{s}")
        assert ui.h1() == "Not Found"
        assert "no such certificate" in ui.d.page_source
    ui.shot("other-team-sees-nothing")
    ui.sign_out()


def test_forged_and_missing_csrf_refused_in_the_browser_session(svc, browser):
    """A form posted with the session cookie but without this session's
    token (as a cross-site page would, were SameSite not there) is
    refused: checked with the browser's own cookie through requests."""
    ui = Console(browser, svc)
    ui.sign_in("ann")
    cookie = {c["name"]: c["value"] for c in browser.get_cookies()}
    s = requests.Session()
    s.cookies.update(cookie)
    # verify on each call: a Session's own would lose to REQUESTS_CA_BUNDLE.
    page = s.get(svc.service_url + "/ui/requests", verify=svc.root_pem, timeout=10)
    assert page.status_code == 200 and "ann (agent)" in page.text
    for data in ({}, {"csrf": "forged"}):
        r = s.post(svc.service_url + "/ui/certs/01/revoke", data={**data, "reason": "superseded"},
                   verify=svc.root_pem, allow_redirects=False, timeout=10)
        assert r.status_code == 403, r.text
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # Without the cookie, the same post goes to the sign-in page.
    r = requests.post(svc.service_url + "/ui/certs/01/revoke", data={"reason": "superseded"},
                      verify=svc.root_pem, allow_redirects=False, timeout=10)
    assert (r.status_code, r.headers["Location"]) == (303, "/ui/signin")
    ui.sign_out()


def test_csr_batch_upload_from_a_file_and_key_recovery_in_chromium(svc, browser, tmp_path):
    """A requester uploads a file of two CSRs plus one pasted and sees each
    CSR's result; then asks for a key back, which two agents approve."""
    ui = Console(browser, svc)
    ui.step = 20
    ui.sign_in("alice")
    ui.open("/ui/upload")
    ui.all_controls_labelled()
    csr_file = tmp_path / "devices.csr.pem"
    csr_file.write_text(make_csr("up1.example.com")[0] + make_csr("up2.example.com")[0])
    Select(ui.d.find_element(By.ID, "profile")).select_by_value("server")
    ui.d.find_element(By.ID, "entity_id").send_keys("fleet-7")
    ui.d.find_element(By.ID, "batch-name").send_keys("November")
    ui.d.find_element(By.ID, "pem").send_keys(make_csr("up3.example.com")[0])
    ui.d.find_element(By.ID, "file").send_keys(str(csr_file))
    ui.d.find_element(By.ID, "upload").click()
    ui.wait(ec.url_contains("/ui/batches/"))
    assert "Uploaded 3 CSRs" in ui.flash()
    summary = ui.d.find_element(By.TAG_NAME, "dl").text
    assert "3: 3 issued, 0 pending, 0 rejected, 0 failed" in summary, summary
    rows = ui.d.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3 and all("issued" in r.text for r in rows)
    ui.shot("batch-results")

    # Key recovery of one of Alice's server-key certificates.
    ui.open("/ui/issue/server")
    ui.d.find_element(By.ID, "entity_id").send_keys("kr-1")
    ui.d.find_element(By.ID, "names").send_keys("kr-1.example.com")
    ui.d.find_element(By.ID, "issue").click()
    ui.wait(ec.url_contains("/ui/certs/"))
    serial = ui.d.current_url.rsplit("/", 1)[1]
    ui.d.find_element(By.ID, "recover").click()
    ui.wait(ec.url_contains("/ui/recoveries"))
    m = re.search(r"Key recovery (\S+) requested", ui.flash())
    assert m, ui.flash()
    rec = m.group(1)
    ui.sign_out()
    for agent in ("ann", "art"):
        ui.sign_in(agent)
        ui.open("/ui/recoveries?status=pending")
        ui.d.find_element(By.ID, f"approve-rec-{rec}").click()
        ui.wait(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Approved recovery"))
        ui.shot(f"recovery-approved-by-{agent}")
        ui.sign_out()
    ui.sign_in("alice")
    ui.open("/ui/recoveries")
    row = ui.d.find_element(By.XPATH, f"//tr[td/code[text()='{rec}']]")
    assert "2 of 2: ann, art" in row.text and "approved" in row.text, row.text
    row.find_element(By.TAG_NAME, "button").click()
    ui.wait(ec.url_contains(f"/ui/certs/{serial}"))
    assert "zip with the recovered key" in ui.d.find_element(By.CSS_SELECTOR, ".card.ready").text
    ui.shot("recovered-key-ready")
    ui.no_csp_violations()
    ui.sign_out()
