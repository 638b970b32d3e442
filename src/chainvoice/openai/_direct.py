"""Streamed requests sent straight to chainvoice's HTTP transport (private).

When chainvoice builds an ``AsyncOpenAI`` client itself on its lean transport (see
``_transport``), a stage's streamed requests skip the SDK's request pipeline (parameter
transforms, request options, the HTTP client's layers): about 0.9 ms of CPU a request.
What a request carries and how a failure is handled stay the SDK's:

- the headers are the client's own (``default_headers`` and ``auth_headers``: the key,
  organization, project, user agent), its base URL, timeout and ``max_retries``;
- an opening that fails is retried by the SDK's own rule and delay (``_should_retry``,
  ``_calculate_retry_timeout``: 408, 409, 429 and 5xx, ``x-should-retry``,
  ``Retry-After``, exponential backoff);
- what is raised is the SDK's own exception (``_make_status_error_from_response``,
  ``APITimeoutError``, ``APIConnectionError``), so a stage translates it as before.

A client passed by the user, one with a key provider, workload identity or a provider
runtime, or an SDK without those methods, is sent through the SDK as usual.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from chainvoice.openai._httpx import httpx

if TYPE_CHECKING:
    from chainvoice.openai._transport import LeanTransport

__all__ = ["DirectResponse", "DirectSender", "direct_sender", "json_body", "register"]

_REGISTERED: weakref.WeakKeyDictionary[Any, tuple[Any, LeanTransport]] = weakref.WeakKeyDictionary()
_SENDERS: weakref.WeakKeyDictionary[Any, DirectSender] = weakref.WeakKeyDictionary()
_SDK_METHODS = ("_should_retry", "_calculate_retry_timeout", "_make_status_error_from_response")
_SDK_ONLY = ("extra_headers", "extra_query", "extra_body", "timeout")
_MAX_REDIRECTS = 20  # the SDK's HTTP client's
_MADE_MAX = 32  # requests' parsed URLs and headers kept per sender


def register(client: Any, http_client: Any, transport: LeanTransport) -> None:
    """Note that chainvoice built ``client`` with ``http_client`` on ``transport``."""
    _REGISTERED[client] = (http_client, transport)


def direct_sender(client: Any) -> DirectSender | None:
    """A sender for ``client``'s requests, or None when they must go through the SDK."""
    http_client, transport = _REGISTERED.get(client, (None, None))
    # Only while the client still sends through the HTTP client chainvoice gave it.
    if transport is None or getattr(client, "_client", None) is not http_client:
        return None
    sender = _SENDERS.get(client)
    if sender is not None:
        return sender
    if not _plain(client):
        return None
    try:
        from openai._models import FinalRequestOptions
    except ImportError:  # pragma: no cover - an SDK without it: the SDK's way
        return None
    sender = _SENDERS[client] = DirectSender(client, transport, FinalRequestOptions)
    return sender


def _plain(client: Any) -> bool:
    """A client whose requests carry its key as is, with the SDK's retry methods."""
    return (
        all(callable(getattr(client, name, None)) for name in _SDK_METHODS)
        and isinstance(getattr(client, "api_key", None), str)
        and getattr(client, "_api_key_provider", None) is None
        and getattr(client, "_provider_runtime", None) is None
        and getattr(client, "workload_identity", None) is None
        and not client.default_query
    )


def json_body(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK would send for a ``create(**kwargs)`` call.

    ``extra_body`` is merged in last; the SDK's other per-call options are dropped.
    """
    body = {k: v for k, v in kwargs.items() if k not in _SDK_ONLY}
    extra = kwargs.get("extra_body")
    if extra:
        body.update(extra)
    return body


class DirectSender:
    """Sends one client's streamed POST requests on its transport (see the module docstring).

    Args:
        client: The ``AsyncOpenAI`` client (its settings are read at every request).
        transport: The transport chainvoice built it on.
        options_cls: The SDK's ``FinalRequestOptions`` (for its retry delay).
    """

    def __init__(self, client: Any, transport: LeanTransport, options_cls: Any) -> None:
        self._client = client
        self._transport = transport
        self._options_cls = options_cls
        # The parsed URL and headers of the last requests, by what they are made of (the
        # client's settings are still read at every request; parsing is done once).
        self._made: dict[tuple[Any, ...], tuple[httpx.URL, httpx.Headers]] = {}

    def post(
        self,
        path: str,
        *,
        json_data: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        accept: str | None = None,
    ) -> DirectRequest:
        """A POST to ``path`` (relative to the base URL), opened with ``async with``.

        Give ``json_data``, or a multipart ``form`` and its ``files`` (fields encoded as
        the SDK encodes them: ``true``, ``list[]``, ``dict[key]``); ``accept`` replaces the
        client's ``Accept`` header.
        """
        content, content_type = b"", None
        if files is not None:
            fields: dict[str, Any] = {}
            for key, value in self._client.qs.stringify_items(
                dict(form or {}), array_format="brackets"
            ):
                fields.setdefault(key, []).append(value)
            multipart = httpx.Request("POST", "http://multipart", data=fields, files=files)
            content = multipart.read()
            content_type = multipart.headers["Content-Type"]
        elif json_data is not None:
            content = json.dumps(
                json_data, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            content_type = "application/json"
        return DirectRequest(self, path, content, content_type, accept)

    def _request(
        self,
        path: str,
        content: bytes,
        content_type: str | None,
        accept: str | None,
        retries: int,
    ) -> httpx.Request:
        client = self._client
        headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
        headers.update(client.auth_headers)
        if accept is not None:
            headers["Accept"] = accept
        if content_type is not None:
            headers["Content-Type"] = content_type
        base = str(client.base_url)
        key = (base, path, *headers.items())
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= _MADE_MAX:
                self._made.clear()
            url = httpx.URL(base.rstrip("/") + "/" + path.lstrip("/"))
            made = self._made[key] = (url, httpx.Headers(headers))
        url, parsed = made
        timeout = client.timeout
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        request = httpx.Request(
            "POST", url, headers=parsed, content=content, extensions={"timeout": timeout.as_dict()}
        )
        request.headers["X-Stainless-Retry-Count"] = str(retries)
        return request


class DirectRequest:
    """One request: ``async with`` sends it (with retries) and gives the response."""

    def __init__(
        self,
        sender: DirectSender,
        path: str,
        content: bytes,
        content_type: str | None,
        accept: str | None,
    ) -> None:
        self._sender = sender
        self._path = path
        self._content = content
        self._content_type = content_type
        self._accept = accept
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> DirectResponse:
        sender = self._sender
        client = sender._client
        max_retries = client.max_retries
        retries = 0
        while True:
            request = sender._request(
                self._path, self._content, self._content_type, self._accept, retries
            )
            response: httpx.Response | None = None
            try:
                response = await self._send(request)
            except httpx.TimeoutException as exc:
                if retries >= max_retries:
                    from openai import APITimeoutError

                    raise APITimeoutError(request=request) from exc
            except Exception as exc:  # the SDK's rule: any other failure is a connection error
                if retries >= max_retries:
                    from openai import APIConnectionError

                    raise APIConnectionError(request=request) from exc
            else:
                if 200 <= response.status_code < 300:
                    self._response = response
                    return DirectResponse(response)
                if retries >= max_retries or not client._should_retry(response):
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                    raise client._make_status_error_from_response(response) from None
                await response.aclose()
            options = sender._options_cls.construct(method="post", url=self._path)
            await anyio.sleep(
                client._calculate_retry_timeout(
                    max_retries - retries, options, None if response is None else response.headers
                )
            )
            retries += 1

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The response to ``request``, redirects followed as the SDK's HTTP client does."""
        transport = self._sender._transport
        for _ in range(_MAX_REDIRECTS + 1):
            response = await transport.handle_async_request(request)
            response.request = request
            follow = _redirected(request, response)
            if follow is None:
                return response
            await response.aclose()
            request = follow
        raise httpx.TooManyRedirects("exceeded the maximum number of redirects", request=request)

    async def __aexit__(self, *exc_info: object) -> None:
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()


def _redirected(request: httpx.Request, response: httpx.Response) -> httpx.Request | None:
    """The request a redirect asks for, made as httpx makes it; None if not a redirect.

    303 (and 301 or 302 after a POST) turn into a GET without the body; another origin
    gets no ``Authorization``.
    """
    location = response.headers.get("location")
    status = response.status_code
    if status not in (301, 302, 303, 307, 308) or not location:
        return None
    url = request.url.join(location)
    method = request.method
    if status == 303 or (status in (301, 302) and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    del headers["Host"]
    if not _same_origin(request.url, url):
        headers.pop("Authorization", None)
    content: bytes | None = request.content
    if method != request.method:
        content = None
        for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions=request.extensions
    )


def _same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    """Whether a redirect from ``url`` to ``other`` keeps ``Authorization``.

    As httpx decides: the same origin, or the same host moved from http to https.
    """
    ports = {"http": 80, "https": 443}
    port, other_port = url.port or ports.get(url.scheme), other.port or ports.get(other.scheme)
    if url.host != other.host:
        return False
    if url.scheme == other.scheme:
        return port == other_port
    return url.scheme == "http" and other.scheme == "https" and (port, other_port) == (80, 443)


class DirectResponse:
    """A streamed response, shaped like the SDK's ``with_streaming_response`` one."""

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response
        self.headers = http_response.headers
        self.status_code = http_response.status_code

    def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives (``chunk_size`` bytes at a time, if given)."""
        return self.http_response.aiter_bytes(chunk_size)
