"""`ferkit serve`: the REST API (FastAPI) and the web page with live webcam recognition.

Needs the optional extra: `pip install 'ferkit[serve]'` (FastAPI, uvicorn, python-multipart).

    from ferkit.serve import Engine, EngineConfig, ServeSettings, create_app
    app = create_app(Engine(EngineConfig(workers=2)), ServeSettings())
"""

from __future__ import annotations

from .engine import Engine, EngineConfig
from .server import check_exposure, run_server

__all__ = ["Engine", "EngineConfig", "ServeSettings", "check_exposure", "create_app", "run_server"]


def __getattr__(name: str):
    if name in ("ServeSettings", "create_app"):  # FastAPI is imported only when the app is made
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
