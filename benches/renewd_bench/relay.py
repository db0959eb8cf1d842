"""The relay in front of Pebble that timestamps every request reaching the CA
(part e): nginx when it is installed (HTTP/2, like Pebble; NginxRelay), else a
built-in asyncio TLS relay (HTTP/1.1 only; Relay, or with --python-relay). Both
offer dir_url for the client, start(), stop(), requests as (time.time(), method,
path), first_after() and dump() of the request log."""

import asyncio
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from .common import Fail
from .processes import CLEANUP, free_ports, stop_process

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

# A TLS relay in front of Pebble that timestamps every request line (part e).


class Relay:
    """Terminates TLS with Pebble's own listener certificate, forwards to Pebble over
    TLS and records (time.time(), method, path) of every HTTP/1.1 request line.
    ALPN offers only http/1.1, so the client cannot switch to HTTP/2 here."""

    REQ = re.compile(rb"(GET|HEAD|POST) (/[^ \r\n]*) HTTP/1\.1\r\n")

    def __init__(self, pebble):
        self.pebble = pebble
        self.port = free_ports(1)[0]
        self.dir_url = f"https://127.0.0.1:{self.port}/dir"
        self.requests = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()
        self.server = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _start(self):
        certs = self.pebble.state_dir / "certs"
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(certs / "localhost.pem", certs / "localhost.key")
        server_ctx.set_alpn_protocols(["http/1.1"])
        self.client_ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        self.client_ctx.set_alpn_protocols(["http/1.1"])
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port,
                                                 ssl=server_ctx, backlog=1024)

    async def _conn(self, creader, cwriter):
        try:
            await self._relay(creader, cwriter)
        except asyncio.CancelledError:  # stop(): nothing to report
            pass

    async def _relay(self, creader, cwriter):
        # Read (and timestamp) the client's requests at once; forward them when the
        # upstream connection is up, so its set-up time is not counted.
        upstream = asyncio.ensure_future(asyncio.open_connection(
            "127.0.0.1", self.pebble.port, ssl=self.client_ctx, server_hostname="127.0.0.1"))

        async def client_to_ca():
            tail = b""  # a request line may straddle two reads
            try:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    now = time.time()
                    buf = tail + data
                    for m in self.REQ.finditer(buf):
                        if m.end() > len(tail):  # not seen in the previous read
                            self.requests.append((now, m.group(1).decode(), m.group(2).decode()))
                    tail = buf[-512:]
                    _, uwriter = await upstream
                    uwriter.write(data)
                    await uwriter.drain()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                if upstream.done() and not upstream.exception():
                    upstream.result()[1].close()

        async def ca_to_client():
            try:
                ureader, _ = await upstream
                while True:
                    data = await ureader.read(65536)
                    if not data:
                        break
                    cwriter.write(data)
                    await cwriter.drain()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                cwriter.close()

        await asyncio.gather(client_to_ca(), ca_to_client())

    def start(self):
        CLEANUP.relays.append(self)
        self.thread.start()
        self.started.wait(10)
        return self

    async def _shutdown(self):
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def dump(self, path):
        """The request log: time.time(), method, path per line."""
        Path(path).write_text("".join(f"{t:.6f} {m} {p}\n" for t, m, p in list(self.requests)))

    def first_after(self, t, method, path_prefix):
        for (ts, m, p) in list(self.requests):
            if ts >= t and m == method and p.startswith(path_prefix):
                return ts
        return None


class NginxRelay:
    """The same as Relay, but nginx: it speaks HTTP/2 to the client as Pebble does, and
    logs when each request's first byte arrived ($msec - $request_time, 1 ms
    resolution). Used for part e when nginx is installed.

    With `ari_window` (start, end: RFC 3339), nginx answers every renewalInfo request
    itself, with that window and `Retry-After: 21600` (what Let's Encrypt sends), as
    a CA that knows every certificate would: part f works on a cached set that the
    Pebble behind it never issued (Pebble would answer 404, and renewd retry within
    minutes)."""

    def __init__(self, pebble, work, ari_window=None):
        self.ari_window = ari_window
        self.pebble = pebble
        self.port = free_ports(1)[0]
        self.dir_url = f"https://127.0.0.1:{self.port}/dir"
        self.dir = Path(work) / f"nginx-{self.port}"
        self.proc = None

    def start(self):
        d = self.dir
        for sub in ("tmp", "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        certs = self.pebble.state_dir / "certs"
        tmp = d / "tmp"
        (d / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    # Like Pebble itself: no request limit per connection and no server-side idle
    # timeout that the client's own (hyper: 90 s) would not hit first.
    keepalive_requests 1000000000;
    keepalive_timeout 3600s;
    log_format ts '$msec $request_time $request_method $request_uri $status';
    access_log {d}/logs/access.log ts;
    upstream pebble {{
        server 127.0.0.1:{self.pebble.port};
        keepalive 64;
        keepalive_timeout 3600s;
        keepalive_requests 1000000000;
    }}
    server {{
        listen 127.0.0.1:{self.port} ssl http2;
        ssl_certificate {certs}/localhost.pem;
        ssl_certificate_key {certs}/localhost.key;
        {self._ari_location()}
        location / {{
            proxy_pass https://pebble;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_ssl_verify off;
            proxy_buffering off;
        }}
    }}
}}
""")
        self.proc = CLEANUP.add(subprocess.Popen(
            [NGINX, "-p", str(d), "-c", str(d / "nginx.conf")], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(d / "logs" / "stderr.log", "ab"),
            start_new_session=True))
        ctx = ssl.create_default_context(cafile=str(self.pebble.ca))
        for _ in range(100):
            try:
                urllib.request.urlopen(self.dir_url, context=ctx, timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise Fail(f"nginx did not come up; see {d}/logs")

    def _ari_location(self):
        if not self.ari_window:
            return ""
        start, end = self.ari_window
        body = '{"suggestedWindow":{"start":"%s","end":"%s"}}' % (start, end)
        return ("location ~ /renewalInfo/ { default_type application/json; "
                "add_header Retry-After 21600 always; return 200 '" + body + "'; }")

    def stop(self):
        if self.proc:
            stop_process(self.proc)

    @property
    def requests(self):
        out = []
        try:
            lines = (self.dir / "logs" / "access.log").read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            f = line.split()
            if len(f) >= 4:
                out.append((float(f[0]) - float(f[1]), f[2], f[3]))
        return sorted(out)

    def dump(self, path):
        shutil.copy(self.dir / "logs" / "access.log", path)

    def first_after(self, t, method, path_prefix):
        for (ts, m, p) in self.requests:
            if ts >= t and m == method and p.startswith(path_prefix):
                return ts
        return None
