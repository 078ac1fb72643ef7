#!/usr/bin/env python3
"""A referrers-API front for a registry that lacks it (CNCF distribution 2.8, Debian's
`docker-registry`), so the local world answers as ECR does. See README.md in this directory
for the OCI distribution spec 1.1 sections it follows.

  proxy.py --upstream http://127.0.0.1:PORT [--port 0] [--state FILE]

Prints `REFERRERS_PROXY_ENDPOINT=http://127.0.0.1:<port>` on stdout once it listens. Every
request is forwarded unchanged (Host header included, so upload Locations point back here);
only three things are added:
  * PUT of a manifest with a `subject`: after the registry stored it, the descriptor is
    indexed under (repository, subject) and the answer carries `OCI-Subject`;
  * GET /v2/<name>/referrers/<digest>[?artifactType=…]: the index (auth checked upstream);
  * DELETE of a manifest: it leaves every referrers list of its repository.
"""
import argparse
import hashlib
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

REFERRERS = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>sha256:[a-f0-9]{64})$")
MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
INDEX = "application/vnd.oci.image.index.v1+json"
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
       "trailers", "transfer-encoding", "upgrade"}
MAX_MANIFEST = 4 * 1024 * 1024


class State:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.refs = {}  # "name@subject" -> [descriptor]
        if path:
            try:
                with open(path) as f:
                    self.refs = json.load(f)
            except FileNotFoundError:
                pass

    def save(self):
        if self.path:
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.refs, f)
            import os
            os.replace(self.path + ".tmp", self.path)

    def add(self, name, subject, desc):
        with self.lock:
            lst = self.refs.setdefault(f"{name}@{subject}", [])
            if not any(d["digest"] == desc["digest"] for d in lst):
                lst.append(desc)
            self.save()

    def remove(self, name, digest):
        with self.lock:
            for key, lst in self.refs.items():
                if key.startswith(name + "@"):
                    lst[:] = [d for d in lst if d["digest"] != digest]
            self.save()

    def list(self, name, subject):
        with self.lock:
            return list(self.refs.get(f"{name}@{subject}", []))


def make_handler(upstream, state):
    up = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("proxy: " + (fmt % args) + "\n")

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def upstream(self, method, path, headers, body):
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() not in HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body:
                conn.send(body)
            return conn, conn.getresponse()

        def relay(self, resp, extra=(), body=None):
            self.send_response(resp.status, resp.reason)
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
            if body is None and resp.getheader("Content-Length") is None and self.command != "HEAD":
                body = resp.read()
            for k, v in headers:
                if body is not None and k.lower() == "content-length":
                    continue
                self.send_header(k, v)
            for k, v in extra:
                self.send_header(k, v)
            if body is not None:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            self.end_headers()
            if self.command == "HEAD":
                return
            while True:
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                self.wfile.write(chunk)

        def forward(self):
            body = self.read_body()
            path = urllib.parse.urlsplit(self.path).path
            m = MANIFEST.match(path)
            conn, resp = self.upstream(self.command, self.path, self.headers.items(), body)
            try:
                extra = []
                if m and self.command == "PUT" and 200 <= resp.status < 300 and len(body) <= MAX_MANIFEST:
                    extra = self.index_subject(m.group("name"), body)
                if m and self.command == "DELETE" and 200 <= resp.status < 300:
                    state.remove(m.group("name"), m.group("ref"))
                self.relay(resp, extra)
            finally:
                conn.close()

        def index_subject(self, name, body):
            try:
                doc = json.loads(body)
            except ValueError:
                return []
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
                return []
            desc = {
                "mediaType": doc.get("mediaType") or self.headers.get("Content-Type"),
                "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                "size": len(body),
            }
            art = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if art:
                desc["artifactType"] = art
            if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
                desc["annotations"] = doc["annotations"]
            state.add(name, subject["digest"], desc)
            return [("OCI-Subject", subject["digest"])]

        def referrers(self, name, digest, query):
            self.read_body()
            # Same access rule as reading the repository: ask the registry with the caller's credentials.
            hdrs = [(k, v) for k, v in self.headers.items() if k.lower() in ("authorization", "host")]
            conn, resp = self.upstream("HEAD", f"/v2/{name}/tags/list", hdrs, b"")
            try:
                resp.read()
                if resp.status == 401:
                    return self.relay(resp, body=b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
            finally:
                conn.close()
            descs = state.list(name, digest)
            extra = []
            want = urllib.parse.parse_qs(query).get("artifactType")
            if want:
                descs = [d for d in descs if d.get("artifactType") == want[0]]
                extra.append(("OCI-Filters-Applied", "artifactType"))
            body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": descs}).encode()
            self.send_response(200)
            self.send_header("Content-Type", INDEX)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def dispatch(self):
            parts = urllib.parse.urlsplit(self.path)
            m = REFERRERS.match(parts.path)
            if m and self.command == "GET":
                return self.referrers(m.group("name"), m.group("digest"), parts.query)
            return self.forward()

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = dispatch

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state")
    a = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.upstream, State(a.state)))
    srv.daemon_threads = True
    print(f"REFERRERS_PROXY_ENDPOINT=http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
