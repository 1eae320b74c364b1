#!/usr/bin/env python3
"""One HTTP(S) request for the status page tests, with Python's standard library: prints
{"status": code (0: no HTTP answer at all), "set_cookie": header, "body": text} as JSON.
Redirects are not followed (the sign-in's 303 is what the test looks at)."""
import argparse, json, ssl, sys, urllib.error, urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--data")
    ap.add_argument("--bearer")
    ap.add_argument("--cafile")
    a = ap.parse_args()
    req = urllib.request.Request(a.url, method=a.method, data=a.data.encode() if a.data is not None else None)
    if a.bearer:
        req.add_header("Authorization", "Bearer " + a.bearer)
    handlers = [NoRedirect()]
    if a.cafile:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=a.cafile)))
    out = {"status": 0, "set_cookie": "", "body": ""}
    try:
        with urllib.request.build_opener(*handlers).open(req, timeout=10) as r:
            out.update(status=r.status, set_cookie=r.headers.get("Set-Cookie", ""), body=r.read().decode())
    except urllib.error.HTTPError as e:
        out.update(status=e.code, set_cookie=e.headers.get("Set-Cookie", ""), body=e.read().decode(errors="replace"))
    except Exception as e:  # refused, reset, TLS handshake: no HTTP answer
        out["body"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
