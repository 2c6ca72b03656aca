#!/usr/bin/python3
"""tests/integration/serve-browser.py BASE TOKEN APP ARTIFACTS

A real browser on the dashboard of `upaas serve`: headless Chromium driven
by Selenium signs in with TOKEN (scope build), opens APP, clicks Build,
sees the build queued, starts `$UPAAS worker --once`, and watches the
build go running -> succeeded with its log lines appearing while it runs.
Screenshots of the main pages go to ARTIFACTS/serve-*.png. Fails on any
error in the browser's console. Exits 0 when all went well.
"""
import os
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN, APP, ART = sys.argv[1:5]
UPAAS = os.environ["UPAAS"]


def browser(profile):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    # the network is closed: nothing may try to reach the outside
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1360,1000", "--user-data-dir=" + profile):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def step(msg):
    print("# " + msg, flush=True)


def shot(d, name, full=False):
    """a screenshot of the window, or of the whole page"""
    d.execute_script("window.scrollTo(0, 0)")
    if full:
        hgt = d.execute_script("return document.documentElement.scrollHeight")
        d.set_window_size(1360, max(1000, min(hgt + 140, 4000)))
    time.sleep(0.3)
    d.save_screenshot(os.path.join(ART, "serve-%s.png" % name))
    if full:
        d.set_window_size(1360, 1000)


def console_errors(d):
    bad = []
    for e in d.get_log("browser"):
        if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", ""):
            bad.append(e["message"])
    return bad


def main():
    profile = tempfile.mkdtemp(prefix="upaas-chromium-")
    d = browser(profile)
    worker = None
    errors = []
    try:
        wait = WebDriverWait(d, 30, poll_frequency=0.05)
        step("login")
        d.get(BASE + "/")
        wait.until(EC.visibility_of_element_located((By.ID, "token")))
        shot(d, "login")
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.ID, "login-button").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#apps-table tr[data-app='%s']" % APP)))
        shot(d, "apps")
        errors += console_errors(d)

        step("open the app")
        d.find_element(By.CSS_SELECTOR, "#apps-table tr[data-app='%s'] a" % APP).click()
        wait.until(EC.element_to_be_clickable((By.ID, "build")))
        wait.until(EC.presence_of_element_located((By.ID, "packages-table")))
        wait.until(EC.presence_of_element_located((By.ID, "duration-chart")))
        shot(d, "app")

        step("click Build")
        d.find_element(By.ID, "build").click()
        wait.until(EC.presence_of_element_located((By.ID, "build-id")))
        bid = d.find_element(By.ID, "build-id").text
        # the header is redrawn as the build goes on: read it in one go
        pill = lambda: d.execute_script(
            "const e = document.querySelector('h1 .state'); return e ? e.dataset.state : null")
        wait.until(lambda _: pill() == "queued")
        seen = ["queued"]
        step("build %s is queued; starting a worker" % bid)
        shot(d, "build-queued")
        worker = subprocess.Popen([UPAAS, "worker", "--once"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        live_lines = None
        shot_running = False
        t0 = time.time()
        while time.time() - t0 < 120:
            st = pill()
            if st != seen[-1]:
                seen.append(st)
            lines = d.execute_script(
                "return Array.from(document.querySelectorAll('#log .ln')).map(e => e.textContent)")
            text = "\n".join(lines)
            if st == "running" and "main begins" in text and "main ends" not in text:
                live_lines = len(lines)
                if not shot_running:
                    time.sleep(0.4)
                    shot(d, "build-running")
                    shot_running = True
            if st in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        # the last lines follow the end state
        WebDriverWait(d, 10).until(lambda _: d.execute_script(
            "return document.getElementById('log').textContent.includes('main ends')"))
        step("states seen: %s" % " -> ".join(seen))
        if seen != ["queued", "running", "succeeded"]:
            raise SystemExit("want queued -> running -> succeeded, saw %s" % " -> ".join(seen))
        if not live_lines:
            raise SystemExit("no log line was shown while the build ran")
        step("%d log lines were on the page while the build ran" % live_lines)
        done = d.execute_script(
            "return Array.from(document.querySelectorAll('#pipeline .stage.done')).map(e => e.dataset.step)")
        step("pipeline: done: %s" % ", ".join(done))
        if "main" not in done:
            raise SystemExit("the pipeline does not show the main step done")
        time.sleep(0.5)
        shot(d, "build", full=True)
        errors += console_errors(d)

        step("queue and app pages")
        d.get(BASE + "/#/queue")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr[data-build='%s']" % bid)))
        shot(d, "queue")
        d.get(BASE + "/#/app/" + APP)
        wait.until(EC.presence_of_element_located((By.ID, "packages-table")))
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#packages-table tbody tr")) >= 2)
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#duration-chart rect.bar")) >= 2)
        shot(d, "app-after", full=True)
        d.get(BASE + "/#/hosts")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "main .card")))
        errors += console_errors(d)
        if errors:
            raise SystemExit("errors in the browser console:\n  " + "\n  ".join(errors))
        step("no error in the browser console")
    finally:
        if worker:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        d.quit()
        subprocess.run(["rm", "-rf", profile])


if __name__ == "__main__":
    main()
