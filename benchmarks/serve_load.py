"""Load test of `ferkit serve`: concurrent clients POST the shared photos to /v1/detect on loopback.

    .venv/bin/python benchmarks/serve_load.py [--clients 16] [--seconds 60] [--workers 2] [--pool thread]

Starts `ferkit serve` on 127.0.0.1 at a free port in a subprocess, warms it up, then runs --clients threads
(one keep-alive connection each) that send photo after photo (multipart, as the web page does) until
--seconds have passed, and stops the server. Reports requests/s, latency percentiles, the status codes
(no 5xx allowed: the exit code is 1 if any), and the server's resident memory (process and children)
sampled every second: after warm-up, at the end and the largest. The clients run on the same machine
and take some of its CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from machine import cpu_line

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("FERKIT_DATASETS", ROOT.parent / "shared" / "datasets")) / "photos"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children (the process pool's workers), in MB."""
    total, pids = 0, [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(conn: http.client.HTTPConnection, body: bytes, content_type: str) -> int:
    conn.request("POST", "/v1/detect", body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    response.read()
    return response.status


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ferkit serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("ferkit serve did not start")


class Load:
    """Clients that POST photo after photo on their own keep-alive connection until `stop_at`."""

    def __init__(self, port: int, photos: list[tuple[bytes, str]], clients: int, stop_at: float) -> None:
        self.port, self.photos, self.clients, self.stop_at = port, photos, clients, stop_at
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def client(self, index: int) -> None:
        conn, n = self.connect(), index
        while time.perf_counter() < self.stop_at:
            body, content_type = self.photos[n % len(self.photos)]
            n += self.clients
            t0 = time.perf_counter()
            try:
                status = post(conn, body, content_type)
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors[type(exc).__name__] += 1
                conn.close()
                conn = self.connect()
                continue
            with self.lock:
                self.latencies.append(time.perf_counter() - t0)
                self.statuses[status] += 1
        conn.close()

    def run(self, server_pid: int) -> list[float]:
        """Run every client to the end; the server's memory (MB) sampled every second meanwhile."""
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in threads:
            t.start()
        memory = []
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            memory.append(rss_mb(server_pid))
        return memory


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="thread", choices=("thread", "process"))
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    return parser.parse_args()


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "ferkit", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(args.workers), "--pool", args.pool, "--threads", str(args.threads)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def summary(args: argparse.Namespace, load: Load, memory: list[float], elapsed: float,
            load_before: tuple[float, ...]) -> dict:
    latencies = sorted(load.latencies)

    def pct(q: float) -> float:
        return (latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
                if latencies else float("nan"))

    return {
        "clients": args.clients, "seconds": round(elapsed, 1), "workers": args.workers, "pool": args.pool,
        "threads_per_worker": args.threads, "photos": len(load.photos), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(pct(0.50), 1), "p90_ms": round(pct(0.90), 1), "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "status": {str(k): v for k, v in sorted(load.statuses.items())},
        "connection_errors": dict(load.errors),
        "server_rss_mb": {"after_warmup": round(memory[0]), "end": round(memory[-1]),
                          "max": round(max(memory)), "every_10s": [round(m) for m in memory[::10]]},
        "cpu": cpu_line(), "load_average_before": [round(v, 2) for v in load_before],
    }


def main() -> int:
    args = parse_args()
    load_before = os.getloadavg()
    files = [args.photos / "angry_man.jpg", args.photos / "crying_woman.jpg",
             *sorted((args.photos / "expw").glob("*.jpg"))]
    photos = [multipart(f.name, f.read_bytes()) for f in files]
    port = free_port()
    server = start_server(args, port)
    try:
        wait_ready(port, server)
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body, content_type in photos:  # every photo once: kernels picked, detector pyramids seen
            post(warm, body, content_type)
        memory = [rss_mb(server.pid)]
        start = time.perf_counter()
        load = Load(port, photos, args.clients, start + args.seconds)
        memory += load.run(server.pid)
        elapsed = time.perf_counter() - start
    finally:
        stop_server(server)
    result = summary(args, load, memory, elapsed, load_before)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    server_errors = sum(v for k, v in load.statuses.items() if k >= 500)
    if server_errors or load.errors:
        print(f"FAIL: {server_errors} 5xx answers, {sum(load.errors.values())} connection errors",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
