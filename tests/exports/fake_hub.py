"""A minimal stand-in for the Hugging Face Hub HTTP API on 127.0.0.1.

Just enough of the endpoints that ``datasets.Dataset.push_to_hub`` and
``huggingface_hub.DatasetCard.push_to_hub`` call (repo info, create repo,
preupload, commit with inline base64 files, tree listing, file download), kept
in memory. Every request is recorded with its Authorization header so a test
can check which token was sent. Used with ``HF_ENDPOINT=http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo_id -> {"private": bool, "files": {path: bytes}}
        self.requests: list[dict] = []
        self.commits: list[dict] = []
        self.validated: list[dict] = []
        self.blobs: dict[str, bytes] = {}  # LFS objects by sha256
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload=None, headers=None, raw=None):
                data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/octet-stream" if raw is not None
                                 else "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def handle_one(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                path = unquote(urlparse(self.path).path)
                hub.requests.append({"method": self.command, "path": path,
                                     "authorization": self.headers.get("authorization"), "body": body})
                try:
                    hub.route(self, path, body)
                except Exception as exc:  # a bug here must show up in the test, not hang it
                    self._send(500, {"error": repr(exc)})

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ routes
    def route(self, h, path, body):
        m = re.match(r"^/api/datasets/([^/]+/[^/]+)(/.*)?$", path)
        if path == "/api/repos/create" and h.command == "POST":
            req = json.loads(body or b"{}")
            repo = f"{req.get('organization') or req.get('namespace') or 'user'}/{req['name']}"
            if repo in self.repos:
                return h._send(409, {"error": "You already created this dataset repo",
                                     "url": f"{self.url}/datasets/{repo}"})
            self.repos[repo] = {"private": req.get("private"), "files": {}}
            return h._send(200, {"url": f"{self.url}/datasets/{repo}", "name": repo})
        lfs = re.match(r"^/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
        if lfs:
            req = json.loads(body or b"{}")
            objs = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                     "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}", "header": {}}}}
                    for o in req.get("objects", [])]
            return h._send(200, {"transfer": "basic", "objects": objs})
        if path.startswith("/lfs-upload/") and h.command == "PUT":
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(body).hexdigest() != oid:
                return h._send(400, {"error": "sha256 mismatch"})
            self.blobs[oid] = body
            return h._send(200, {})
        if path == "/api/validate-yaml" and h.command == "POST":
            self.validated.append(json.loads(body or b"{}"))
            return h._send(200, {"errors": [], "warnings": []})
        if m:
            repo, rest = m.group(1), m.group(2) or ""
            if repo not in self.repos:
                return h._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            files = self.repos[repo]["files"]
            if rest == "" or rest.startswith("/revision/"):
                return h._send(200, {"id": repo, "sha": SHA, "private": self.repos[repo]["private"],
                                     "siblings": [{"rfilename": p} for p in sorted(files)]})
            if rest.startswith("/preupload/"):
                req = json.loads(body or b"{}")
                return h._send(200, {"files": [{"path": f["path"], "uploadMode": "lfs", "shouldIgnore": False,
                                                "oid": None} for f in req.get("files", [])]})
            if rest.startswith("/commit/"):
                ops = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                commit = {"repo": repo, "header": None, "files": [], "deleted": []}
                for op in ops:
                    if op["key"] == "header":
                        commit["header"] = op["value"]
                    elif op["key"] == "file":
                        files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                        commit["files"].append(op["value"]["path"])
                    elif op["key"] == "lfsFile":
                        files[op["value"]["path"]] = self.blobs[op["value"]["oid"]]
                        commit["files"].append(op["value"]["path"])
                    elif op["key"] in ("deletedFile", "deletedFolder"):
                        p = op["value"]["path"]
                        for k in [k for k in files if k == p or k.startswith(p.rstrip("/") + "/")]:
                            del files[k]
                        commit["deleted"].append(p)
                    else:
                        return h._send(400, {"error": f"unsupported operation {op['key']}"})
                self.commits.append(commit)
                return h._send(200, {"commitUrl": f"{self.url}/datasets/{repo}/commit/{SHA}", "commitOid": SHA,
                                     "pullRequestUrl": None})
            t = re.match(r"^/tree/[^/]+/?(.*)$", rest)
            if t:
                prefix = t.group(1).strip("/")
                if prefix and not any(p.startswith(prefix + "/") for p in files):
                    return h._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                out, dirs = [], set()
                for p, data in sorted(files.items()):
                    if prefix and not p.startswith(prefix + "/"):
                        continue
                    tail = p[len(prefix) + 1:] if prefix else p
                    if "/" in tail and "recursive=true" not in h.path.lower():
                        d = (prefix + "/" if prefix else "") + tail.split("/")[0]
                        if d not in dirs:
                            dirs.add(d)
                            out.append({"type": "directory", "path": d, "oid": SHA})
                        continue
                    out.append({"type": "file", "path": p, "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest()})
                return h._send(200, out)
            if rest.startswith("/paths-info/"):
                return h._send(200, [])
            return h._send(404, {"error": f"no route {path}"}, {"X-Error-Code": "EntryNotFound"})
        r = re.match(r"^/datasets/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
        if r:
            repo, fpath = r.group(1), r.group(2)
            if repo not in self.repos:
                return h._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            data = self.repos[repo]["files"].get(fpath)
            if data is None:
                return h._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            etag = hashlib.sha1(data).hexdigest()
            return h._send(200, raw=data, headers={"ETag": f'"{etag}"', "X-Repo-Commit": SHA})
        return h._send(404, {"error": f"no route {path}"})
