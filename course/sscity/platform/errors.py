"""NGSI-LD errors (ETSI GS CIM 009, clause 6.3.2) as one exception class.

Every failure inside the broker raises :class:`NgsiError`; the HTTP layer turns it into an
``application/problem+json`` body ``{type, title, status, detail}``. Keeping one class with a
``kind`` (the last part of the ProblemDetails type URI) keeps handlers small and makes it
impossible to invent an error type the specification does not have.
"""

from __future__ import annotations

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"

#: ProblemDetails kind -> (HTTP status, title). Clause 6.3.2 of the specification.
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "InvalidRequest": (400, "Invalid request"),
    "BadRequestData": (400, "Bad request data"),
    "AlreadyExists": (409, "Already exists"),
    "OperationNotSupported": (422, "Operation not supported"),
    "ResourceNotFound": (404, "Resource not found"),
    "InternalError": (500, "Internal error"),
    "TooComplexQuery": (403, "Too complex query"),
    "TooManyResults": (403, "Too many results"),
    "LdContextNotAvailable": (503, "@context not available"),
    "NoMultiTenantSupport": (501, "No multi-tenant support"),
    "NonexistentTenant": (404, "Nonexistent tenant"),
    # Media-type errors (clause 6.3.4) have no ProblemDetails type of their own in the
    # specification; they reuse InvalidRequest with the HTTP status the clause asks for.
    "UnsupportedMediaType": (415, "Unsupported media type"),
    "NotAcceptable": (406, "Not acceptable"),
    "MethodNotAllowed": (405, "Method not allowed"),
    # Resource limits of the HTTP binding (RFC 9110, 15.5.14 and 15.5.15).
    "PayloadTooLarge": (413, "Payload too large"),
    "UriTooLong": (414, "URI too long"),
}

# The media-type, method and size errors are reported with the InvalidRequest type URI.
_TYPE_ALIASES = {"UnsupportedMediaType": "InvalidRequest", "NotAcceptable": "InvalidRequest",
                 "MethodNotAllowed": "InvalidRequest", "PayloadTooLarge": "InvalidRequest",
                 "UriTooLong": "InvalidRequest"}


class NgsiError(Exception):
    """A failed NGSI-LD operation, reported to the caller as ProblemDetails.

    Parameters
    ----------
    kind : str
        One of :data:`ERROR_KINDS`, e.g. ``"BadRequestData"``.
    detail : str
        What was wrong and what to do, in words a student understands.
    status : int, optional
        Overrides the kind's usual HTTP status (e.g. 504 for a context that timed out).
    """

    def __init__(self, kind: str, detail: str, status: int | None = None):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown NGSI-LD error kind {kind!r}")
        default_status, self.title = ERROR_KINDS[kind]
        self.kind = kind
        self.status = status or default_status
        self.detail = detail
        super().__init__(f"{kind}: {detail}")

    @property
    def type_uri(self) -> str:
        """The ProblemDetails ``type``, e.g. ``https://uri.etsi.org/ngsi-ld/errors/BadRequestData``."""
        return ERROR_BASE + _TYPE_ALIASES.get(self.kind, self.kind)

    def problem(self) -> dict:
        """The ProblemDetails body (RFC 7807) of this error."""
        return {"type": self.type_uri, "title": self.title, "status": self.status,
                "detail": self.detail}


def bad_data(detail: str) -> NgsiError:
    """A 400 BadRequestData error (the request was well-formed JSON but its content is wrong)."""
    return NgsiError("BadRequestData", detail)


def invalid_request(detail: str) -> NgsiError:
    """A 400 InvalidRequest error (the request itself could not be read, e.g. malformed JSON)."""
    return NgsiError("InvalidRequest", detail)


def not_found(detail: str) -> NgsiError:
    """A 404 ResourceNotFound error."""
    return NgsiError("ResourceNotFound", detail)


def not_implemented(feature: str, clause: str, instead: str = "") -> NgsiError:
    """A 501 for a part of the specification this broker does not implement.

    The ProblemDetails type is OperationNotSupported (the specification's type for an
    operation the broker cannot perform, clause 6.3.2); the status is 501 Not Implemented
    (RFC 9110, 15.6.2), so that a client can tell "not built here" from a wrong request.
    Answering explicitly is the point: a production broker would honour ``feature``, so
    ignoring it would give the caller a different result without a word.
    """
    detail = (f"{feature} (ETSI GS CIM 009, clause {clause}) is not implemented by the course broker; "
              "it is refused rather than ignored, because ignoring it would give a different result "
              "from a production broker.")
    if instead:
        detail += f" {instead}"
    return NgsiError("OperationNotSupported", detail, status=501)
