"""A loopback HTTP server for download tests: serves a folder, and can hang up part-way through a file."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

CUT = "/cut/"
"""``GET /cut/NAME`` announces the whole of ``NAME``, sends a third of it and hangs up (an interrupted download)."""


@dataclass
class FileServer:
    """A running server: its base URL and the paths requested so far, in order."""

    url: str
    hits: list[str] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: object, hits: list[str], **kwargs: object) -> None:
        self.hits = hits
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith(CUT):
            body = (Path(self.directory) / self.path.removeprefix(CUT)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def serving_files(root: Path) -> Iterator[FileServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) until the block ends."""
    server = FileServer(url="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, hits=server.hits, directory=str(root)))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
