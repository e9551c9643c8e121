"""`ferkit serve`: the REST API and the web page (live webcam) for expression recognition.

Kept out of cli.py like `ferkit evaluate`; cli.py registers it: `add_serve` builds the sub-parser,
`run_serve` runs it. It takes the recognizer options of `ferkit predict` (from cli_predict.py).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .cli_predict import _add_recognizer_options
from .errors import ConfigError, FerkitError


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="REST API and web page (live webcam) for expression recognition",
                       description="Serve the REST API (POST /v1/detect, /v1/classify; GET /v1/models, "
                       "/healthz; docs at /docs) and the web page at /. Binds 127.0.0.1 unless told "
                       "otherwise; another address needs --api-key (or --allow-anyone). "
                       "Needs `pip install 'ferkit[serve]'`.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require the header X-API-Key: KEY on /v1/* "
                   "(default: $FERKIT_API_KEY; none on loopback)")
    p.add_argument("--allow-anyone", action="store_true", help="listen beyond loopback without an API key")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. https://app.example) call the API; "
                   "repeatable (default: none)")
    p.add_argument("--workers", type=int, default=2, help="inference workers (default 2)")
    p.add_argument("--pool", default="thread", choices=("thread", "process"),
                   help="workers as threads sharing one model (default) or processes with one model each")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker (default 1)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body (default 10 MB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest image (default 40 million pixels)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to receive an upload, and to answer it")
    _add_recognizer_options(p)


def run_serve(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise FerkitError(f"ferkit serve needs {', '.join(missing)}: pip install 'ferkit[serve]'")
    from .serve import EngineConfig, check_exposure, run_server
    from .serve.app import ServeSettings

    api_key = args.api_key or os.environ.get("FERKIT_API_KEY") or None
    warning = check_exposure(args.host, api_key, args.allow_anyone)
    if not (0 < args.max_upload_mb and 0 < args.timeout and 0 < args.max_pixels and 0 <= args.port < 65536):
        raise ConfigError("--max-upload-mb, --timeout and --max-pixels must be positive, --port in 0..65535")
    config = EngineConfig(model=args.model, detector=args.detector, backend=args.backend, device=args.device,
                          min_face_size=args.min_face_size, tta=args.tta, workers=args.workers,
                          pool=args.pool, threads_per_worker=args.threads, max_pixels=args.max_pixels)
    settings = ServeSettings(max_upload_bytes=int(args.max_upload_mb * 1_000_000), timeout=args.timeout,
                             api_key=api_key, cors_origins=tuple(args.cors_origin))
    if warning:
        warnings.warn(warning, stacklevel=1)
    print(f"ferkit serve: loading the model, then http://{args.host}:{args.port}/ (page), /docs (API); "
          "Ctrl-C stops", file=sys.stderr)
    run_server(config, settings, args.host, args.port)
    return 0
