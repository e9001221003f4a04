"""The Starlette application of ``securitynet serve``: a read-only view of one catalogue.

    >>> app = create_app(Catalogue(url, upgrade=False))
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)

Every page is also served as JSON (``/browse.json?...``, ``/entry/<id>.json``, ...) and the
listings as CSV. Untrusted text (names, licences, evidence, card text) is escaped by Jinja2's
autoescape; links are only made of http(s) URLs; the Content-Security-Policy allows no script
at all and styles only from our own static file. Nothing here writes to the catalogue.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from securitynet.errors import NotFoundError, SecurityNetError
from securitynet.web import boards, views
from securitynet.web.cache import StateCache

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
    env.filters["board_url"] = lambda name, kind: f"/leaderboards/{kind}/" + quote(str(name), safe="")
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


#: Served figures are SVG documents with inline styles and no script: opened on their own
#: (not through an <img>), they may style themselves and nothing else.
FIGURE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def create_app(catalogue: Catalogue, *, cache: bool = True, warm: bool = False) -> Starlette:
    """The web view of ``catalogue`` (open it with ``upgrade=False``: serving migrates nothing).

    ``cache``: keep facet counts and figures per catalogue state (off: every request
    counts and draws afresh, as a benchmark of the cold path wants). ``warm``: count the
    home page and the unfiltered browse page once at start-up, in the background (on a
    million entries these broad counts take seconds; every narrower page is counted when
    asked, in milliseconds)."""
    env = _environment()
    figures = StateCache(32 if cache else 0)  # SVG figures
    counts = StateCache(256 if cache else 0)  # facet counts of browse pages and home

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
        data = views.home(catalogue, cache=counts)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            rows = [[facet, r["value"], r["count"]] for facet, counts in data["counts"].items() for r in counts]
            return _csv_response(["facet", "value", "entries"], rows)
        return render(request, "home.html", data=data)

    def browse(request: Request) -> Response:
        _, fmt = _split_format(request.url.path)
        try:
            query = views.parse_browse(request.query_params)
            data = views.browse(catalogue, query, cache=counts)
        except SecurityNetError as exc:
            return error(request, fmt, exc)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            columns = list(views.queries.SUMMARY_COLUMNS)
            return _csv_response(columns, [[e[c] for c in columns] for e in data["entries"]])
        return render(request, "browse.html", data=data, query=query, facets=views.FACETS, titles=views.FACET_TITLES)

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
            return _csv_response(list(views.FACT_COLUMNS), views.entry_facts(data))
        return render(request, "entry.html", e=data)

    def leaderboard_index(request: Request) -> Response:
        _, fmt = _split_format(request.url.path)
        data = boards.index(catalogue)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            rows = [["dataset", "top1", d["dataset"], None, d["entries"], None, None] for d in data["datasets"]]
            rows += [
                ["attack", a["attack"], a["dataset"], a["metric"], a["entries"], a["ours"], a["published"]]
                for a in data["attacks"]
            ]
            return _csv_response(["board", "name", "dataset", "metric", "entries", "ours", "published"], rows)
        return render(request, "leaderboards.html", data=data)

    def dataset_board(request: Request) -> Response:
        return leaderboard(request, "dataset")

    def attack_board(request: Request) -> Response:
        return leaderboard(request, "attack")

    def leaderboard(request: Request, kind: str) -> Response:
        name, fmt = _split_format(request.path_params["name"])
        try:
            if kind == "dataset":
                data = boards.dataset_board(catalogue, name, request.query_params)
                to_csv = boards.dataset_csv
            else:
                data = boards.attack_board(catalogue, name, request.query_params)
                to_csv = boards.attack_csv
        except SecurityNetError as exc:
            return error(request, fmt, exc)
        if fmt == "json":
            return JSONResponse(data)
        if fmt == "csv":
            return _csv_response(*to_csv(data))
        query = {k: v for k, v in request.query_params.items() if v}
        return render(request, f"board_{kind}.html", data=data, query=query)

    def figure(request: Request) -> Response:
        kind = request.path_params["kind"]
        try:
            svg = boards.figure(catalogue, figures, kind, request.query_params)
        except SecurityNetError as exc:
            return error(request, "json", exc)
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={"Content-Security-Policy": FIGURE_POLICY, "Cache-Control": "no-cache"},
        )

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
        Route("/index.csv", home),
        Route("/leaderboards", leaderboard_index, name="leaderboards"),
        Route("/leaderboards.json", leaderboard_index),
        Route("/leaderboards.csv", leaderboard_index),
        Route("/leaderboards/dataset/{name:path}", dataset_board, name="dataset_board"),
        Route("/leaderboards/attack/{name:path}", attack_board, name="attack_board"),
        Route("/figures/{kind:str}.svg", figure, name="figure"),
        Route("/browse", browse, name="browse"),
        Route("/browse.json", browse),
        Route("/browse.csv", browse),
        Route("/entry/{entry_id:path}", entry, name="entry"),
        Route("/sql", sql, name="sql"),
        Route("/sql.json", sql),
        Route("/sql.csv", sql),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm and cache:
            threading.Thread(target=_warm, args=(catalogue, counts), daemon=True).start()
        yield

    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)], lifespan=lifespan)


def _warm(catalogue: Catalogue, counts: StateCache) -> None:
    """Count the home page and the unfiltered browse page into ``counts``."""
    started = time.monotonic()
    try:
        views.home(catalogue, cache=counts)
        views.browse(catalogue, views.parse_browse({}), cache=counts)
    except (SecurityNetError, SQLAlchemyError):  # an optimisation: the page counts when asked
        log.warning("could not count the home and browse pages ahead", exc_info=True)
        return
    log.info("home and browse counted ahead in %.1f s", time.monotonic() - started)
