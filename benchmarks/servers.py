"""The reference servers against the standard library's equivalents, under the same load, in one run.

    python benchmarks/servers.py [--requests N] [--concurrency C] [--rounds R]

Each server answers the same load from ApacheBench (`ab`, a C load generator, so that the
generator is not what is measured; Debian: apt-get install apache2-utils):
- the kit's solution/ servers, in each mode;
- socketserver.TCPServer, ForkingTCPServer and ThreadingTCPServer, with a request handler that
  calls the same handle_client();
- nginx, where installed, returning a fixed 200 reply: the ceiling of a C server on this machine.
Requests/s are reported, and each as a ratio against the stdlib server of the same mode. Rounds
alternate the servers, so that a burst of other load on the machine falls on all of them.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from autograder.harness import Server  # noqa: E402

STDLIB_SERVER = textwrap.dedent(
    """
    import socketserver, sys
    sys.path.insert(0, sys.argv[2])
    from handler import handle_client

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            handle_client(self.request, self.client_address)

    kind = {"single": socketserver.TCPServer, "multiprocess": socketserver.ForkingTCPServer,
            "multithread": socketserver.ThreadingTCPServer}[sys.argv[1]]
    kind.allow_reuse_address = True
    kind.request_queue_size = 4096
    with kind(("127.0.0.1", 0), Handler) as server:
        print(f"Serving on 127.0.0.1:{server.server_address[1]}", flush=True)
        server.serve_forever()
    """
)

NGINX_CONF = """
daemon off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "GET / HTTP/1.0\\r\\n"; }} }} }}
"""


def ab(port: int, requests: int, concurrency: int, seconds: float | None = None) -> float:
    """Requests/s that ApacheBench measured: requests in all (or as many as fit in seconds, if given),
    concurrency connections at once; an error if ab failed or a request did."""
    limit = ["-t", f"{seconds:g}"] if seconds else []
    run = subprocess.run(
        ["ab", "-q", *limit, "-n", str(requests), "-c", str(concurrency), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=300 + (seconds or 0),
    )
    failed = re.search(r"Failed requests:\s+(\d+)", run.stdout)
    rps = re.search(r"Requests per second:\s+([\d.]+)", run.stdout)
    if run.returncode != 0 or not rps or not failed or failed[1] != "0":
        raise RuntimeError(f"ab failed against port {port}:\n{run.stdout[-800:]}{run.stderr[-800:]}")
    return float(rps[1])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=20, help="ab's -c (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server (default: %(default)s)")
    args = parser.parse_args()
    if not shutil.which("ab"):
        sys.exit("this benchmark needs ApacheBench (ab): apt-get install apache2-utils")
    print(
        f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load: ab -n {args.requests} -c {args.concurrency}, {args.rounds} rounds, median shown")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stdlib_server.py").write_text(STDLIB_SERVER)
        servers = {}
        for mode in ("single", "multiprocess", "multithread"):
            servers[f"kit {mode}"] = Server(KIT / "solution" / f"{mode}_server.py", ["--port", "0"], tmp / "logs")
            script, stdlib_args = tmp / "stdlib_server.py", [mode, str(KIT / "solution")]
            servers[f"stdlib {mode}"] = Server(script, stdlib_args, tmp / "logs", cwd=tmp)
        nginx = None
        if shutil.which("nginx"):
            port = free_port()
            (tmp / "nginx.conf").write_text(NGINX_CONF.format(dir=tmp, port=port))
            nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf")], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        try:
            ports = {name: server.start().port for name, server in servers.items()}
            if nginx is not None:
                ports["nginx (C, fixed reply)"] = port
            results: dict[str, list[float]] = {name: [] for name in ports}
            for _ in range(args.rounds):
                for name, port in ports.items():
                    results[name].append(ab(port, args.requests, args.concurrency))
        finally:
            for server in servers.values():
                server.kill()
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{'server':<26}{'requests/s':>12}  ratio")
    for name, rps in medians.items():
        kind, _, mode = name.partition(" ")
        ratio = f"{rps / medians['stdlib ' + mode]:.2f}x stdlib {mode}" if kind == "kit" else ""
        print(f"{name:<26}{rps:>12.0f}  {ratio}")


if __name__ == "__main__":
    main()
