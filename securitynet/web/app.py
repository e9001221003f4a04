"""The Starlette application of ``securitynet serve``: a read-only view of one catalogue.

    >>> app = create_app(Catalogue(url, upgrade=False))
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)

Every page is also served as JSON (``/browse.json?...``, ``/entry/<id>.json``, ...) and the
listings as CSV. Untrusted text (names, licences, evidence, card text) is escaped by Jinja2's
autoescape; links are only made of http(s) URLs; the Content-Security-Policy allows no script
at all and styles only from our own static file. Nothing here writes to the catalogue.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from securitynet.errors import NotFoundError, SecurityNetError
from securitynet.web import views

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent

#: No script from anywhere, styles only from our static file, no framing, forms only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_LINK_SCHEMES = frozenset({"http", "https"})


def safe_href(url: object) -> str | None:
    """``url`` when it is an absolute http(s) URL, else None (the template shows it as text:
    ``javascript:``, ``data:`` and the like never become a link)."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc:
        return None
    return text


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_href"] = safe_href
    env.filters["qs"] = lambda params: urlencode(params)
    env.filters["entry_url"] = lambda entry_id: "/entry/" + quote(str(entry_id), safe="/:@")
    return env


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def _split_format(path: str) -> tuple[str, str]:
    """``("browse", "json")`` for ``browse.json``; ``(path, "html")`` without a known suffix."""
    for fmt in ("json", "csv"):
        if path.endswith(f".{fmt}"):
            return path[: -len(fmt) - 1], fmt
    return path, "html"


def _csv_response(columns: list[str], rows: list[list[Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return PlainTextResponse(buffer.getvalue(), media_type="text/csv; charset=utf-8")


def create_app(catalogue: Catalogue) -> Starlette:
    """The web view of ``catalogue`` (open it with ``upgrade=False``: serving migrates nothing)."""
    env = _environment()

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(request=request, **context)
        return HTMLResponse(html, status_code=status)

    def error(request: Request, fmt: str, exc: SecurityNetError) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 400
        body = {"error": str(exc), "hint": exc.hint}
        if fmt == "html":
            return render(request, "error.html", status, **body)
        return JSONResponse(body, status_code=status)

    def home(request: Request) -> Response:
        _, fmt = _split_format(request.url.path)
        data = views.home(catalogue)
        if fmt == "json":
            return JSONResponse(data)
        return render(request, "home.html", data=data)

    def browse(request: Request) -> Response:
        _, fmt = _split_format(request.url.path)
        try:
            query = views.parse_browse(request.query_params)
            data = views.browse(catalogue, query)
        except SecurityNetError as exc:
            return error(request, fmt, exc)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            columns = list(views.queries.SUMMARY_COLUMNS)
            return _csv_response(columns, [[e[c] for c in columns] for e in data["entries"]])
        return render(request, "browse.html", data=data, query=query, facets=views.FACETS)

    def entry(request: Request) -> Response:
        raw_id = request.path_params["entry_id"]
        entry_id, fmt = _split_format(raw_id)
        if fmt != "html" and catalogue.find(raw_id) is not None:
            entry_id, fmt = raw_id, "html"  # an id that itself ends in .json
        try:
            data = views.entry(catalogue, entry_id)
        except SecurityNetError as exc:
            return error(request, fmt, exc)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            claims = data["claims"]
            columns = ["dataset", "split", "metric", "value", "img_size", "kind", "source", "evidence"]
            return _csv_response(columns, [[c.get(k) for k in columns] for c in claims])
        return render(request, "entry.html", e=data)

    def sql(request: Request) -> Response:
        _, fmt = _split_format(request.url.path)
        statement = request.query_params.get("q", "").strip()
        data: dict[str, Any] | None = None
        if statement:
            try:
                data = views.sql(catalogue, statement)
            except SecurityNetError as exc:
                if fmt != "html":
                    return error(request, fmt, exc)
                return render(request, "sql.html", 400, statement=statement, error=str(exc), hint=exc.hint, data=None)
        if fmt == "json":
            return JSONResponse(data or {"columns": [], "rows": [], "truncated": False})
        if fmt == "csv":
            return _csv_response(data["columns"] if data else [], data["rows"] if data else [])
        return render(request, "sql.html", statement=statement, data=data, error=None, hint=None)

    routes = [
        Route("/", home, name="home"),
        Route("/index.json", home),
        Route("/browse", browse, name="browse"),
        Route("/browse.json", browse),
        Route("/browse.csv", browse),
        Route("/entry/{entry_id:path}", entry, name="entry"),
        Route("/sql", sql, name="sql"),
        Route("/sql.json", sql),
        Route("/sql.csv", sql),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
