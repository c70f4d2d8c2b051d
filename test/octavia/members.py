#!/usr/bin/python3
# Pool members for the Octavia conformance test: one HTTP server per
# "PORT:NAME" argument on ADDRESS, each answering every GET with its NAME.
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(name):
    body = name.encode()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return H


def main():
    address = sys.argv[1]
    servers = []
    for spec in sys.argv[2:]:
        port, name = spec.split(":", 1)
        servers.append(ThreadingHTTPServer((address, int(port)), handler(name)))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
