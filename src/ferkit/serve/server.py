"""Run the app with uvicorn: `ferkit serve`, and a server in a background thread for tests and benchmarks."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from contextlib import contextmanager

from ..errors import ConfigError
from .engine import Engine, EngineConfig


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, api_key: str | None, allow_anyone: bool = False) -> str | None:
    """Refuse to listen beyond this machine without an API key, unless told so; return the warning
    to print."""
    if is_loopback(host) or api_key:
        return None
    if not allow_anyone:
        raise ConfigError(f"--host {host} lets other machines reach the service; "
                          f"protect it with --api-key KEY "
                          f"(or FERKIT_API_KEY), or pass --allow-anyone to serve it without a key")
    return (f"listening on {host} without an API key: anyone who can reach this port can use the service "
            f"and its CPU")


def _uvicorn_config(app, host: str, port: int, log_level: str = "info"):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                          timeout_keep_alive=5, limit_concurrency=256, timeout_graceful_shutdown=5,
                          server_header=False)


def run_server(config: EngineConfig, settings, host: str = "127.0.0.1", port: int = 8000,
               log_level: str = "info") -> None:
    """Load the model, then serve until Ctrl-C."""
    import uvicorn

    from .app import create_app

    engine = Engine(config)
    uvicorn.Server(_uvicorn_config(create_app(engine, settings, close_engine=True),
                                   host, port, log_level)).run()


class BackgroundServer:
    """uvicorn serving `app` on 127.0.0.1 at a free port, in a daemon thread; `url` is where it listens."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(_uvicorn_config(app, host, self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def background_server(app):
    server = BackgroundServer(app).start()
    try:
        yield server
    finally:
        server.stop()
