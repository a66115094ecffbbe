"""Run the broker as an HTTP server: ``sscity platform serve`` or :func:`serve`.

The server is uvicorn with one worker process (SQLite serialises writers anyway, and a
second process would double the memory for nothing on a laptop) and no access log. Its HTTP
parser is httptools when installed (it costs about 90 microseconds less CPU per request than
h11: GET by id serves about 1.6 times as many requests per second), else h11; both answer
the same 414 for a URL over the broker's limit and refuse a request head over
:data:`MAX_HEADER_BYTES`.

It listens on a TCP port (``http://127.0.0.1:1026``, like Orion-LD) or, with ``uds=``, on a
Unix domain socket: a file that any local process allowed into its folder can connect to,
even one with no network at all (a sandboxed Jupyter kernel of the grader). Clients reach
it with ``Client(url="http+unix:///path/to/broker.sock")``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
import sys
import threading
from pathlib import Path

DEFAULT_PORT = 1026  # the port of Orion-LD, so clients need no change
SOCKET_MODE = 0o666  # any user may connect: the folder around the socket decides who can reach it
#: The HTTP parser (h11) reads a request line and headers of up to this many bytes: a URL
#: longer than the broker's limit (8 KiB) but shorter than this gets a 414 ProblemDetails;
#: only a request head over 1 MiB is refused by the parser itself (400, connection closed).
MAX_HEADER_BYTES = 1024 * 1024
_MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107  # bytes of sun_path, less its final NUL


def _http_protocol():
    """uvicorn's httptools protocol with the broker's URL and head limits, or "h11" without httptools.

    httptools' URL parser fails on a URL over 64 KiB, which uvicorn answers with a bare 400; and
    it puts no bound on a request head. This subclass counts the URL and head bytes: a head over
    :data:`MAX_HEADER_BYTES` is refused (400, connection closed, like h11), and a URL over 16 KiB
    is replaced by a stand-in path whose real length the application reads from the
    ``sscity.url_bytes`` scope extension, so it answers its usual 414 ProblemDetails.
    """
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"
    kept = 16 * 1024  # any URL this long is already over the application's limit (8 KiB)

    class Protocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.url_bytes = self.head_bytes = 0

        def _count(self, nbytes: int) -> None:
            self.head_bytes += nbytes
            if self.head_bytes > MAX_HEADER_BYTES:
                raise httptools.HttpParserError(f"request head over {MAX_HEADER_BYTES} bytes")

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            self.url_bytes += len(url)
            if len(self.url) < kept:
                self.url += url[:kept - len(self.url)]

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            too_long = self.url_bytes > len(self.url)
            if too_long:
                self.url = b"/"
            super().on_headers_complete()
            if too_long:  # the request task has not started yet: it sees this
                self.scope.setdefault("extensions", {})["sscity.url_bytes"] = self.url_bytes

    return Protocol


def _check_socket_path(path: Path) -> None:
    """Raise ValueError unless a Unix socket can be bound at ``path`` (removes a stale one)."""
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ValueError(f"the socket path {path} is {len(os.fsencode(path))} bytes long; Unix sockets "
                         f"allow at most {_MAX_SOCKET_PATH} here. Choose a shorter path, e.g. "
                         "/tmp/sscity/broker.sock.")
    if not path.parent.is_dir():
        raise ValueError(f"the folder {path.parent} does not exist; create it first (mkdir -p "
                         f"{path.parent}) or choose another socket path.")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path} exists and is not a socket; choose another path for --uds.")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError as err:
            if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise ValueError(f"cannot check the socket {path} ({err}); remove it or choose another "
                                 "path.") from None
        else:
            raise ValueError(f"a server is already listening on {path}; stop it first, or choose another "
                             "path.")
    path.unlink(missing_ok=True)  # a socket left behind by a server that was killed


def _bind_unix_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode :data:`SOCKET_MODE`, ready when the file appears.

    The socket is bound under a temporary name in the same folder, made connectable by
    every user and put to listening, and only then renamed to ``path``: whoever sees the
    file can connect at once (no window where it exists but refuses connections or has the
    umask's mode).
    """
    _check_socket_path(path)
    staging = path.with_name(f".sscity-{os.getpid()}.sock")
    if len(os.fsencode(staging)) > _MAX_SOCKET_PATH:
        staging = path  # no room for the temporary name: bind in place
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staging.unlink(missing_ok=True)
        sock.bind(str(staging))
        os.chmod(staging, SOCKET_MODE)
        sock.listen(2048)
        if staging != path:
            os.replace(staging, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            staging.unlink()
        raise
    return sock


def _identity(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return info.st_dev, info.st_ino, info.st_ctime_ns


@contextlib.contextmanager
def _exit_cleanly_on_sigterm():
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks (removing the socket) run.

    uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    it found: the default one would kill the process before the socket file is removed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _base_url(host: str, port: int) -> str:
    """How clients name this server in URLs (of hosted @contexts): a wildcard host is localhost."""
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def _broker(db, contexts, context_cache, base_url: str):
    """The broker to serve, with its extra @context documents loaded (ValueError if one is wrong)."""
    from .broker import Broker

    broker = Broker(db if db is not None else ":memory:")
    try:
        # Checked before the server starts, so that a wrong file stops it with a clear message
        # instead of 503s later.
        broker.contexts.base_url = base_url
        for spec in contexts:
            broker.contexts.load(spec)
        if context_cache is not None:
            broker.contexts.use_cache_dir(context_cache)
    except BaseException:
        broker.close()
        raise
    return broker


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, db: str | Path | None = None,
          log_level: str = "warning", uds: str | Path | None = None,
          max_body: int | None = None, contexts: list[str | Path] | tuple = (),
          context_cache: str | Path | None = None) -> None:
    """Serve the NGSI-LD API on ``http://host:port/ngsi-ld/v1`` (or a Unix socket) until interrupted.

    Parameters
    ----------
    host : str
        Interface to listen on; ``127.0.0.1`` keeps the broker private to this machine.
        Ignored when ``uds`` is given.
    port : int
        TCP port (1026, like Orion-LD, by default). Ignored when ``uds`` is given.
    db : str or Path, optional
        SQLite database file, kept across restarts. None or ``":memory:"`` keeps
        everything in memory (lost when the server stops).
    log_level : str
        uvicorn's log level.
    uds : str or Path, optional
        Listen on a Unix domain socket at this path instead of a TCP port (Linux, macOS).
        The socket file is made with mode 0o666, so a process of another user (a sandboxed
        Jupyter kernel with no network) can connect: restrict access with the permissions
        of its folder. The file appears only once it accepts connections (a request made
        while the broker is still starting waits for it), and is removed when the server
        stops. A socket left behind by a killed server is replaced; a path that is not a
        socket, or one another server listens on, is refused. Clients use
        ``Client(url="http+unix:///absolute/path/of/the.sock")``.
    max_body : int, optional
        Largest request body in bytes (default :data:`~sscity.platform.app.MAX_BODY_BYTES`,
        8 MiB); a larger one is answered 413 before it is read whole.
    contexts : list of str or Path
        JSON-LD context documents the broker resolves besides the shipped ones (it never
        downloads one), each ``URL=FILE`` (FILE is the document answered for URL) or a folder
        with a ``contexts.json`` index mapping URLs to its files. They are listed as kind
        ``Cached`` by ``GET /ngsi-ld/v1/jsonldContexts`` (clause 5.13.3).
    context_cache : str or Path, optional
        A folder (made if missing) where contexts added with ``POST /jsonldContexts`` and
        inline contexts the broker names by URL are kept as files, so their URLs still work
        after a restart; its own ``contexts.json``, if any, adds contexts as ``contexts`` does.
        Without it they live in memory.

    Raises
    ------
    ValueError
        ``uds`` cannot be used: too long (Unix sockets allow about 100 bytes), in a folder that
        does not exist, not a socket, or already served; or a context file, folder or index
        in ``contexts``/``context_cache`` is missing or not a JSON-LD context document.
    RuntimeError
        ``uds`` on a system without Unix domain sockets for asyncio (Windows).
    """
    import uvicorn

    from .app import MAX_BODY_BYTES, create_app

    if max_body is not None and max_body < 1:
        raise ValueError(f"max_body must be a positive number of bytes, got {max_body}.")
    limits = {"max_body_bytes": max_body or MAX_BODY_BYTES}
    options = {"log_level": log_level, "access_log": False, "lifespan": "off", "server_header": False,
               "date_header": False, "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
               "http": _http_protocol()}
    if uds is None:
        broker = _broker(db, contexts, context_cache, _base_url(host, port))
        try:
            uvicorn.run(create_app(broker, **limits), host=host, port=port, **options)
        finally:
            broker.close()
        return
    if os.name != "posix" or not hasattr(socket, "AF_UNIX"):
        raise RuntimeError("a Unix domain socket (--uds) needs Linux or macOS; serve on a port instead.")
    uds = Path(uds).absolute()
    with _exit_cleanly_on_sigterm():
        sock = _bind_unix_socket(uds)
        ours = None
        try:
            ours = _identity(uds)
            broker = _broker(db, contexts, context_cache, "http://localhost")
            try:
                uvicorn.run(create_app(broker, **limits), fd=sock.fileno(), **options)
            finally:
                broker.close()
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                if _identity(uds) == ours:  # still ours, not a newer server's
                    uds.unlink()
