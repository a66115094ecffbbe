"""Run the broker as an HTTP server: ``sscity platform serve`` or :func:`serve`.

The server is uvicorn with one worker process (SQLite serialises writers anyway, and a
second process would double the memory for nothing on a laptop), no access log, and the
HTTP parser uvicorn picks (httptools when installed, else h11).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_PORT = 1026  # the port of Orion-LD, so clients need no change


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, db: str | Path | None = None,
          log_level: str = "warning") -> None:
    """Serve the NGSI-LD API on ``http://host:port/ngsi-ld/v1`` until interrupted.

    Parameters
    ----------
    host : str
        Interface to listen on; ``127.0.0.1`` keeps the broker private to this machine.
    port : int
        TCP port (1026, like Orion-LD, by default).
    db : str or Path, optional
        SQLite database file, kept across restarts. None or ``":memory:"`` keeps
        everything in memory (lost when the server stops).
    log_level : str
        uvicorn's log level.
    """
    import uvicorn

    from .broker import Broker

    broker = Broker(db if db is not None else ":memory:")
    try:
        uvicorn.run(broker.app, host=host, port=port, log_level=log_level, access_log=False,
                    lifespan="off", server_header=False, date_header=False)
    finally:
        broker.close()
