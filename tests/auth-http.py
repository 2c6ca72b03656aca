#!/usr/bin/python3
# tests/auth-http.py DIR CREDFILE - serves the files of DIR on a free port of
# 127.0.0.1 to GET and HEAD requests with HTTP basic credentials, those of
# CREDFILE ("user:password", read from a file so that they are in no
# command line); anything else gets 401. Prints "port N" when it listens.
# A git repository in DIR is cloned over git's "dumb" HTTP protocol
# (after `git update-server-info`).
import base64, functools, http.server, sys

root, credfile = sys.argv[1], sys.argv[2]
with open(credfile) as f:
    want = "Basic " + base64.b64encode(f.read().strip().encode()).decode()


class Handler(http.server.SimpleHTTPRequestHandler):
    def authorized(self):
        if self.headers.get("Authorization") == want:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="upaas-test"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self):
        if self.authorized():
            super().do_GET()

    def do_HEAD(self):
        if self.authorized():
            super().do_HEAD()

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


s = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                     functools.partial(Handler, directory=root))
print("port", s.server_address[1], flush=True)
s.serve_forever()
