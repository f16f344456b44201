"""A local stand-in for the Hugging Face Hub, so that the real download code can be tested.

It answers the two kinds of request huggingface_hub makes for a pull (read from its source):

* ``GET /api/models/{owner}/{name}/revision/{rev}?blobs=true`` -> JSON with the commit (``sha``)
  and ``siblings`` (file name, size, git blob id, and for LFS files ``lfs.sha256`` / ``lfs.size``);
* ``HEAD`` and ``GET /{owner}/{name}/resolve/{rev}/{path}`` -> the file, with the headers the
  Hub sends (``X-Repo-Commit``, ``ETag``, and for LFS files ``X-Linked-Etag`` / ``X-Linked-Size``)
  and Range requests answered with 206 Partial Content.

Faults can be switched on per file: ``corrupt`` serves altered bytes under the true metadata;
``drop_once`` closes the connection half-way through the first download. The server binds to
127.0.0.1 only and stops by itself after ``lifetime`` seconds at the latest.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".onnx", ".onnx_data")
LFS_NAMES = ("tokenizer.json",)


def _is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES) or path.rsplit("/", 1)[-1] in LFS_NAMES


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]
    branches: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    range: str | None


class FakeHub:
    """Serve folders as Hub model repositories on 127.0.0.1."""

    def __init__(self, lifetime: float = 300.0) -> None:
        self.repos: dict[str, Repo] = {}
        self.corrupt: set[tuple[str, str]] = set()
        self.drop_once: set[tuple[str, str]] = set()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, folder: Path) -> str:
        """Publish every file under ``folder`` as ``repo_id`` (branch ``main``); returns the commit."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        digest = hashlib.sha1()
        for name, data in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        commit = digest.hexdigest()
        self.repos[repo_id] = Repo(commit, files, {"main": commit})
        return commit

    def start(self) -> FakeHub:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def downloads(self, path_end: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_end)]

    # -- the handler ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                return None

            def _fail(self, status: int, code: str, message: str) -> None:
                body = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _repo(self, repo_id: str, rev: str) -> tuple[Repo, str] | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._fail(404, "RepoNotFound", f"Repository {repo_id} not found")
                    return None
                commit = repo.branches.get(rev, rev)
                if commit != repo.commit:
                    self._fail(404, "RevisionNotFound", f"Revision {rev} not found")
                    return None
                return repo, commit

            def _record(self, path: str) -> None:
                with hub._lock:
                    hub.requests.append(Request(self.command, path, self.headers.get("Range")))

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                self._record(path)
                if path.startswith("/api/models/"):
                    self._info(path[len("/api/models/") :])
                else:
                    self._resolve(path)

            def do_HEAD(self) -> None:
                path = unquote(urlsplit(self.path).path)
                self._record(path)
                self._resolve(path)

            def _info(self, rest: str) -> None:
                repo_id, _, rev = rest.partition("/revision/")
                found = self._repo(repo_id, rev or "main")
                if found is None:
                    return
                repo, commit = found
                siblings = []
                for name, data in repo.files.items():
                    entry: dict[str, object] = {"rfilename": name, "size": len(data), "blobId": _git_blob_id(data)}
                    if _is_lfs(name):
                        entry["lfs"] = {
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "size": len(data),
                            "pointerSize": 134,
                        }
                    siblings.append(entry)
                body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _resolve(self, path: str) -> None:
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    self._fail(404, "EntryNotFound", f"no route {path}")
                    return
                repo_id, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                found = self._repo(repo_id, rev)
                if found is None:
                    return
                repo, commit = found
                if name not in repo.files:
                    self._fail(404, "EntryNotFound", f"{name} not found")
                    return
                data = repo.files[name]
                etag = hashlib.sha256(data).hexdigest() if _is_lfs(name) else _git_blob_id(data)
                served = data
                if (repo_id, name) in hub.corrupt:
                    served = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes=") and self.command == "GET":
                    start = int(wanted[len("bytes=") :].split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{etag}"')
                if _is_lfs(name):
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.command == "HEAD":
                    return
                body = served[start:]
                key = (repo_id, name)
                if key in hub.drop_once and not start:
                    hub.drop_once.discard(key)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # mid-file: the client must resume with Range
                    return
                self.wfile.write(body)

        return Handler
