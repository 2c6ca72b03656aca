#!/usr/bin/python3
"""tests/integration/serve-client.py - the HTTP client side of serve.sh,
on Python's standard library only (http.client, hmac, socket).

  hook FORGE URL APP_OR_- SECRET EVENT DELIVERY REPO REF AFTER [--bad-sig] [--raw BODY]
      posts a webhook in the forge's own payload shape and headers;
      prints "STATUS BODY"
  sse BASE TOKEN BUILD_ID OUT
      follows a build's log as Server-Sent Events until the end event;
      writes one JSON line per event with the time it arrived
  burst BASE TOKEN N
      requests on one keep-alive connection until ten got 429 (at most N);
      prints the statuses seen
  slow HOST PORT SECONDS
      sends half a request line and waits; prints "closed AFTER_S" when the
      server hangs up, "open" when it did not within SECONDS
  receiver PORT OUT SECRET
      a notification receiver: records each POST (headers, body, whether
      the X-Upaas-Signature-256 checks out) as a JSON line
"""
import hashlib
import hmac
import http.client
import http.server
import json
import socket
import sys
import time
import urllib.parse


def sign(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(forge, repo, ref, after, branch_default):
    """A push payload in the forge's documented shape (trimmed)."""
    before = "0" * 40 if after.startswith("0") else "1" * 40
    commit = {"id": after, "message": "a change", "timestamp": "2026-11-20T21:45:00+00:00",
              "url": repo + "/commit/" + after, "author": {"name": "t", "email": "t@localhost"}}
    if forge == "gitlab":
        return {
            "object_kind": "push", "event_name": "push", "before": before, "after": after,
            "ref": ref, "ref_protected": True, "checkout_sha": after, "user_name": "t",
            "project_id": 15,
            "project": {"id": 15, "name": "web", "web_url": repo, "git_ssh_url": "git@gitlab.example:acme/web.git",
                        "git_http_url": repo, "namespace": "acme", "path_with_namespace": "acme/web",
                        "default_branch": branch_default, "homepage": repo, "url": repo,
                        "ssh_url": "git@gitlab.example:acme/web.git", "http_url": repo},
            "commits": [commit], "total_commits_count": 1,
            "repository": {"name": "web", "url": repo, "description": "", "homepage": repo,
                           "git_http_url": repo, "git_ssh_url": "git@gitlab.example:acme/web.git"},
        }
    repository = {"id": 1296269, "name": "web", "full_name": "acme/web", "private": False,
                  "html_url": repo, "clone_url": repo, "ssh_url": "git@forge.example:acme/web.git",
                  "default_branch": branch_default}
    if forge == "github":
        repository.update({"git_url": "git://forge.example/acme/web.git", "url": repo,
                           "svn_url": repo, "master_branch": branch_default})
    body = {"ref": ref, "before": before, "after": after, "compare": repo + "/compare",
            "commits": [commit], "head_commit": commit, "repository": repository,
            "pusher": {"name": "t", "email": "t@localhost"}, "sender": {"login": "t", "id": 1}}
    if forge == "github":
        body.update({"created": False, "deleted": after.startswith("0"), "forced": False,
                     "base_ref": None})
    else:
        body.update({"total_commits": 1})
    return body


def cmd_hook(a):
    forge, url, app, secret, event, delivery, repo, ref, after = a[:9]
    bad = "--bad-sig" in a
    raw = a[a.index("--raw") + 1].encode() if "--raw" in a else None
    body = raw if raw is not None else json.dumps(payload(forge, repo, ref, after, "main")).encode()
    key = "0" * 64 if bad else secret
    hdr = {"Content-Type": "application/json", "User-Agent": "test-hook"}
    if forge == "github":
        hdr.update({"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                    "X-GitHub-Hook-ID": "1", "X-Hub-Signature-256": "sha256=" + sign(key, body)})
    elif forge == "gitlab":
        hdr.update({"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery,
                    "X-Gitlab-Instance": "https://gitlab.example", "X-Gitlab-Token": key})
    else:
        hdr.update({"X-Gitea-Event": event, "X-Gitea-Delivery": delivery,
                    "X-Gitea-Signature": sign(key, body)})
    u = urllib.parse.urlsplit(url)
    path = "/hooks/" + forge + ("" if app == "-" else "/" + app)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    c.request("POST", path, body=body, headers=hdr)
    r = c.getresponse()
    print(r.status, r.read().decode().strip())


def cmd_sse(a):
    base, token, bid, out = a[:4]
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.request("GET", "/api/v1/builds/%s/log?follow=1" % bid,
              headers={"Authorization": "Bearer " + token, "Accept": "text/event-stream"})
    r = c.getresponse()
    t0 = time.time()
    with open(out, "w") as f:
        f.write(json.dumps({"status": r.status, "type": r.getheader("Content-Type")}) + "\n")
        ev, data, eid = "message", [], None
        while True:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line == "":
                if data or ev != "message":
                    f.write(json.dumps({"t": round(time.time() - t0, 3), "event": ev,
                                        "id": eid, "data": data}) + "\n")
                    f.flush()
                if ev == "end":
                    break
                ev, data, eid = "message", [], None
            elif line.startswith(":"):
                continue
            else:
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "event":
                    ev = v
                elif k == "data":
                    data.append(v)
                elif k == "id":
                    eid = v


def cmd_burst(a):
    """until the first 429, then 10 more (at most N)"""
    base, token, n = a[0], a[1], int(a[2])
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    seen = {}
    for _ in range(n):
        if seen.get(429, 0) >= 10:
            break
        c.request("GET", "/api/v1/whoami", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        r.read()
        seen[r.status] = seen.get(r.status, 0) + 1
        if r.getheader("Connection", "").lower() == "close":
            c.close()
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    print(" ".join("%d:%d" % kv for kv in sorted(seen.items())))


def cmd_slow(a):
    host, port, secs = a[0], int(a[1]), float(a[2])
    s = socket.create_connection((host, port))
    s.sendall(b"GET /api/v1/whoami HT")
    t0 = time.time()
    s.settimeout(secs)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                print("closed %.1f" % (time.time() - t0))
                return
    except socket.timeout:
        print("open")
    except ConnectionResetError:
        print("closed %.1f" % (time.time() - t0))


def cmd_receiver(a):
    port, out, secret = int(a[0]), a[1], a[2]

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            got = self.headers.get("X-Upaas-Signature-256", "")
            ok = hmac.compare_digest(got, "sha256=" + sign(secret, body))
            rec = {"event": self.headers.get("X-Upaas-Event"), "delivery": self.headers.get("X-Upaas-Delivery"),
                   "signed": ok, "body": json.loads(body)}
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    {"hook": cmd_hook, "sse": cmd_sse, "burst": cmd_burst, "slow": cmd_slow,
     "receiver": cmd_receiver}[sys.argv[1]](sys.argv[2:])
