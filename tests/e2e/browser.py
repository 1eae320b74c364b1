#!/usr/bin/env python3
"""Drives Debian's headless Chromium through chromedriver (W3C WebDriver over HTTP, Python's
standard library only) for the status page test: open URL, optionally sign in with a token,
wait until the page's text holds every --wait string, evaluate --eval expressions, save a
screenshot. Prints one JSON object: {"text": body text, "evals": [...], "ok": bool}.
Exit 3 when Chromium cannot start (the test skips with the reason printed)."""
import argparse, base64, json, os, socket, subprocess, sys, tempfile, time, urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--token")
    ap.add_argument("--wait", action="append", default=[])
    ap.add_argument("--eval", action="append", default=[])
    ap.add_argument("--screenshot")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    a = ap.parse_args()
    for exe in (a.chromium, a.chromedriver):
        if not os.access(exe, os.X_OK):
            print(f"{exe} is not installed (scripts/install-deps.sh installs chromium and chromium-driver)")
            return 3
    port = free_port()
    profile = tempfile.mkdtemp(prefix="shardpress-chromium-")
    driver = subprocess.Popen([a.chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    session = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": a.chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1900", f"--user-data-dir={profile}"]}}}}
        try:
            session = call(base, "POST", "/session", caps)["sessionId"]
        except Exception as e:
            print(f"Chromium could not start: {e}")
            return 3
        s = f"/session/{session}"
        call(base, "POST", s + "/url", {"url": a.url})
        if a.token is not None:
            field = call(base, "POST", s + "/element", {"using": "css selector", "value": "#token"})
            fid = list(field.values())[0]
            call(base, "POST", s + f"/element/{fid}/value", {"text": a.token})
            button = call(base, "POST", s + "/element", {"using": "css selector", "value": "#sign-in"})
            call(base, "POST", s + f"/element/{list(button.values())[0]}/click", {})
        deadline = time.time() + a.timeout
        text = ""
        while True:
            text = call(base, "POST", s + "/execute/sync", {"script": "return document.body.innerText", "args": []})
            if all(w in text for w in a.wait) or time.time() > deadline:
                break
            time.sleep(0.25)
        evals = [call(base, "POST", s + "/execute/sync", {"script": "return " + e, "args": []}) for e in a.eval]
        if a.screenshot:
            png = call(base, "GET", s + "/screenshot")
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(png))
        print(json.dumps({"text": text, "evals": evals, "ok": all(w in text for w in a.wait)}))
        return 0
    finally:
        if session:
            try:
                call(base, "DELETE", f"/session/{session}")
            except Exception:
                pass
        driver.terminate()
        driver.wait(10)


if __name__ == "__main__":
    sys.exit(main())
