"""Entrypoint for the nginx catalogue entry: runs the host's nginx when installed, otherwise serves
/usr/share/nginx/html (or a built-in welcome page) on port 80 like the default nginx image. Stdlib only."""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import sys

if __package__:
    from nanokube.images.mounts import host_path
else:  # run as a file with -I -S (see the catalogue entry): the standard library and the files beside it only
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mounts import host_path

WELCOME = b"""<!DOCTYPE html>
<html><head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and working
(served by nanokube's nginx stand-in).</p></body></html>
"""


class Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "nginx"
    sys_version = ""

    def send_head(self):  # type: ignore[no-untyped-def]
        if self.path in ("/", "/index.html") and not os.path.exists(os.path.join(self.directory, "index.html")):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(WELCOME)))
            self.end_headers()
            import io
            return io.BytesIO(WELCOME)
        return super().send_head()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    args = sys.argv[1:] or ["nginx", "-g", "daemon off;"]
    if os.path.basename(args[0]) != "nginx" or shutil.which("nginx"):
        os.execvp(args[0], args)
    root = host_path("/usr/share/nginx/html")
    port = int(os.environ.get("NGINX_PORT", "80"))
    bind = os.environ.get("NANOKUBE_BIND") or "0.0.0.0"
    handler = lambda *a, **kw: Handler(*a, directory=root, **kw)  # noqa: E731
    print(f"nginx stand-in: serving {root} on {bind}:{port}", file=sys.stderr, flush=True)
    Server((bind, port), handler).serve_forever()


if __name__ == "__main__":
    main()
