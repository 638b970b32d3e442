"""OpenAI's exceptions as chainvoice errors, with the original kept as ``__cause__``.

======================================  =========================================
openai (or httpx2) exception            chainvoice error
======================================  =========================================
AuthenticationError (401)               AuthenticationError
PermissionDeniedError (403)             AuthenticationError
NotFoundError (404)                     NotFoundError (names the model)
BadRequestError (400), other 4xx        BadRequestError (carries the server's message)
RateLimitError (429)                    RateLimitError (``retry_after`` from the headers)
InternalServerError, other 5xx          ServerError
APITimeoutError                         APITimeoutError
APIConnectionError                      APIConnectionError
an error event inside a stream          ServerError (or BadRequestError for a bad request)
a timeout after output was delivered    StreamTimeoutError (a StreamInterruptedError and
                                        a TimeoutError)
any failure after output was delivered  StreamInterruptedError
======================================  =========================================

Every message is passed through :func:`~chainvoice.openai._client.redact`, so an API key
never reaches a message even when a server echoes it; so is the original exception (its
``args``, ``message`` and ``body``, and the exceptions chained to it), which a traceback
or ``logging.exception`` prints as the ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import attrs

from chainvoice._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChainvoiceError,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StreamTimeoutError,
)
from chainvoice.openai._client import redact

__all__ = ["ErrorContext", "StreamTimeoutError", "parse_retry_after", "scrub", "translate"]


@attrs.frozen(kw_only=True)
class ErrorContext:
    """What a message about a failed request should name."""

    stage: str
    model: str
    base_url: str
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(parsed.timestamp() - time.time(), 0.0)
    return value if math.isfinite(value) and value >= 0 else None


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    message = getattr(exc, "message", None)
    return str(message) if message else str(exc)


def scrub(exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Redact ``exc`` and the exceptions chained to it, in place, before it is chained.

    The text a traceback or a log shows of an exception comes from its ``args`` (and
    ``__notes__``); the ``openai`` exceptions also keep the server's ``message`` and
    ``body``. A server that echoes the API key puts it in all of them.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):  # a type refusing new args
            current.args = tuple(_redacted(arg, secrets) for arg in current.args)
        for name in ("message", "body", "__notes__"):
            value = current.__dict__.get(name) if hasattr(current, "__dict__") else None
            if value is not None:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(current, name, _redacted(value, secrets))
        pending += [current.__cause__, current.__context__]


def _redacted(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every string in it redacted (through dicts, lists and tuples)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, secrets) for item in value]
    if isinstance(value, tuple):
        return tuple(_redacted(item, secrets) for item in value)
    return value


def _headers(exc: Any) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def translate(exc: BaseException, ctx: ErrorContext, *, delivered: bool = False) -> ChainvoiceError:
    """The chainvoice error for ``exc`` (the caller raises it ``from exc``).

    Args:
        exc: What the ``openai`` client (or its HTTP layer) raised.
        ctx: The stage, model and server, for the message.
        delivered: Whether the stream had already delivered output to the user; any
            failure then becomes :class:`~chainvoice.StreamInterruptedError`.
    """
    import openai

    if isinstance(exc, ChainvoiceError):
        return exc
    scrub(exc, ctx.secrets)
    where = f"{ctx.stage} with model {ctx.model!r} at {ctx.base_url}"

    def clean(text: str) -> str:
        return redact(text, ctx.secrets)

    status = getattr(exc, "status_code", None)
    request_id = getattr(exc, "request_id", None)
    if delivered:
        reason = (
            clean(_server_message(exc)) if isinstance(exc, openai.APIError) else type(exc).__name__
        )
        kept = "it was not retried, so as not to repeat what was already said; what arrived is kept"
        if _timed_out(exc):
            return StreamTimeoutError(
                f"the {where} stream stalled after output had been delivered and the read "
                f"timed out ({reason}); {kept}. Raise timeout= if the server is slow.",
                status_code=status if isinstance(status, int) else None,
                request_id=request_id if isinstance(request_id, str) else None,
            )
        return StreamInterruptedError(
            f"the {where} stream was cut after output had been delivered ({reason}); {kept}",
            status_code=status if isinstance(status, int) else None,
            request_id=request_id if isinstance(request_id, str) else None,
        )
    if isinstance(exc, openai.APIStatusError):
        message = clean(_server_message(exc))
        rid = f" (request id {request_id})" if request_id else ""
        code = exc.status_code
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            what = "was refused" if code == 401 else "is not permitted"
            return AuthenticationError(
                f"the {where} {what} (HTTP {code}): {message}{rid}. Check the API key "
                "(api_key= or OPENAI_API_KEY), the organization and the project.",
                status_code=code,
                request_id=request_id,
            )
        if isinstance(exc, openai.NotFoundError):
            return NotFoundError(
                f"model {ctx.model!r} or its endpoint was not found at {ctx.base_url} "
                f"(HTTP 404, {ctx.stage}): {message}{rid}. Check the model name and base_url.",
                status_code=code,
                request_id=request_id,
            )
        if isinstance(exc, openai.RateLimitError):
            retry_after = parse_retry_after(_headers(exc))
            wait = f"; the server asked to wait {retry_after:g} s" if retry_after else ""
            return RateLimitError(
                f"the {where} was rate limited (HTTP 429) after the client's retries{wait}: "
                f"{message}{rid}. Slow down, or raise max_retries.",
                retry_after=retry_after,
                status_code=code,
                request_id=request_id,
            )
        if code >= 500:
            return ServerError(
                f"the server failed the {where} (HTTP {code}) after the client's retries: "
                f"{message}{rid}",
                status_code=code,
                request_id=request_id,
            )
        return BadRequestError(
            f"the server rejected the {where} (HTTP {code}): {message}{rid}",
            status_code=code,
            request_id=request_id,
        )
    if isinstance(exc, openai.APITimeoutError):
        return APITimeoutError(
            f"the {where} timed out after the client's retries; raise timeout= or check the network"
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f": {clean(str(cause))}" if cause is not None and str(cause) else ""
        return APIConnectionError(
            f"could not reach {ctx.base_url} for the {ctx.stage} (model {ctx.model!r}) after "
            f"the client's retries{detail}"
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ServerError(
            f"the server sent an unexpected response to the {where}: {clean(str(exc))}",
            status_code=exc.status_code,
        )
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        message = clean(_server_message(exc))
        kind = getattr(exc, "type", None) or getattr(exc, "code", None)
        if kind in {"invalid_request_error", "invalid_request"}:
            return BadRequestError(f"the server rejected the {where}: {message}")
        return ServerError(f"the server reported an error during the {where}: {message}")
    return _transport_error(exc, where, ctx)


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is a timeout: the openai client's, its HTTP layer's, or the built-in."""
    import openai

    from chainvoice.openai._httpx import httpx as httpx2

    # asyncio.TimeoutError is the built-in TimeoutError from Python 3.11; on 3.10 it is not.
    timeouts = (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError, asyncio.TimeoutError)
    return isinstance(exc, timeouts)


def _transport_error(exc: BaseException, where: str, ctx: ErrorContext) -> APIError:
    from chainvoice.openai._httpx import httpx as httpx2

    if isinstance(exc, httpx2.TimeoutException):
        return APITimeoutError(f"the {where} stalled and timed out; raise timeout= or retry")
    if isinstance(exc, httpx2.TransportError):
        return StreamInterruptedError(
            f"the {where} stream was cut ({type(exc).__name__}: {redact(str(exc), ctx.secrets)})"
        )
    return ServerError(f"the {where} failed: {type(exc).__name__}: {redact(str(exc), ctx.secrets)}")
