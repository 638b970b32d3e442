"""Client setup for the OpenAI stages: one shared client, settings or env, redaction."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from chainvoice._errors import AuthenticationError, ConfigurationError

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = ["ClientSettings", "make_client", "redact"]

_KEY_PATTERN = re.compile(r"\b(sk|sess|rk)-[A-Za-z0-9_\-]{8,}")
_PLACEHOLDER_KEY = "not-needed"  # for OpenAI-compatible servers that take no key


@attrs.frozen(kw_only=True)
class ClientSettings:
    """How to build a client when none is given; unset values come from the environment.

    The SDK reads ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID`` and
    ``OPENAI_PROJECT_ID``. The key is never shown in a repr.
    """

    api_key: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    organization: str | None = None
    project: str | None = None
    timeout: float | None = None
    max_retries: int | None = None

    def given(self) -> dict[str, Any]:
        """The settings that were set, as client keyword arguments."""
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


def _missing_key() -> AuthenticationError:
    return AuthenticationError(
        "no OpenAI API key: pass api_key=..., set the OPENAI_API_KEY environment variable, "
        "or pass a ready client=OpenAI(...). For an OpenAI-compatible server that needs no "
        "key, pass base_url=... (a placeholder key is then used)."
    )


_C = TypeVar("_C")


def _build(factory: type[_C], settings: ClientSettings, *, asynchronous: bool) -> _C:
    import os

    from openai import OpenAIError

    kwargs = settings.given()
    base_url = kwargs.get("base_url") or os.environ.get("OPENAI_BASE_URL")
    no_key = "api_key" not in kwargs and not os.environ.get("OPENAI_API_KEY")
    if no_key and base_url and not _is_openai_url(str(base_url)):
        kwargs["api_key"] = _PLACEHOLDER_KEY
    transport = http_client = None
    if asynchronous:
        transport = _lean_transport(str(base_url) if base_url else None)
        if transport is not None:
            import openai

            http_client = kwargs["http_client"] = openai.DefaultAsyncHttpxClient(
                transport=transport
            )
    try:
        client = factory(**kwargs)
    except OpenAIError as exc:
        if "credentials" in str(exc).lower() or "api_key" in str(exc):
            raise _missing_key() from None
        raise ConfigurationError(f"cannot build an OpenAI client: {exc}") from None
    except TypeError as exc:  # pragma: no cover - a wrong type for a setting
        raise ConfigurationError(f"cannot build an OpenAI client: {exc}") from None
    if transport is not None:
        from chainvoice.openai._direct import register

        register(client, http_client, transport)
    return client


def _lean_transport(base_url: str | None) -> Any:
    """Chainvoice's lean transport for a new async client, or None.

    None (the SDK's own stack) when a proxy is configured or ``CHAINVOICE_HTTP=httpx``.
    """
    from chainvoice.openai._transport import LeanTransport, lean_transport_applies

    if not lean_transport_applies(base_url):
        return None
    return LeanTransport()


def _check_kind(client: object, want_async: bool, stage: str) -> None:
    from openai import AsyncOpenAI, OpenAI

    if want_async and isinstance(client, OpenAI):
        raise ConfigurationError(
            f"{stage} needs an AsyncOpenAI client, not OpenAI; use the sync twin "
            f"{stage.removeprefix('Async')} or pass client=AsyncOpenAI(...)"
        )
    if not want_async and isinstance(client, AsyncOpenAI):
        raise ConfigurationError(
            f"{stage} needs a sync OpenAI client, not AsyncOpenAI; use the async twin "
            f"Async{stage} or pass client=OpenAI(...)"
        )


def make_client(
    client: OpenAI | AsyncOpenAI | None,
    settings: ClientSettings,
    stage: str,
    *,
    asynchronous: bool,
) -> Any:
    """The given client (with ``timeout``/``max_retries`` applied), or a new one.

    A new client is an ``AsyncOpenAI`` when ``asynchronous``, else an ``OpenAI``, built
    from ``settings`` and the environment.

    Raises:
        ConfigurationError: ``client`` is of the wrong kind, or a client and connection
            settings (``api_key``, ``base_url``, ...) were both given.
        AuthenticationError: No key anywhere.
    """
    from openai import AsyncOpenAI, OpenAI

    if client is None:
        return _build(AsyncOpenAI if asynchronous else OpenAI, settings, asynchronous=asynchronous)
    _check_kind(client, asynchronous, stage)
    return _adjust(client, settings, stage)


def _adjust(client: _C, settings: ClientSettings, stage: str) -> _C:
    """The client, with ``timeout``/``max_retries`` applied; other settings conflict."""
    given = settings.given()
    conflicting = sorted(set(given) - {"timeout", "max_retries"})
    if conflicting:
        raise ConfigurationError(
            f"{stage}: pass either client=... or {', '.join(conflicting)}, not both; "
            "configure the client you pass instead"
        )
    if given:
        adjusted: _C = client.with_options(**given)  # type: ignore[attr-defined]
        return adjusted
    return client


def _is_openai_url(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url.lower()).split("/", 1)[0].split(":", 1)[0]
    return host == "openai.com" or host.endswith(".openai.com")


def base_url_of(client: OpenAI | AsyncOpenAI) -> str:
    """The client's base URL as text, without credentials."""
    return str(client.base_url).rstrip("/")


def is_official(client: OpenAI | AsyncOpenAI) -> bool:
    """Whether the client talks to OpenAI itself (so OpenAI's prices apply)."""
    return _is_openai_url(base_url_of(client))


def secrets_of(client: OpenAI | AsyncOpenAI) -> tuple[str, ...]:
    """Values that must never appear in a message: the client's API key."""
    key = getattr(client, "api_key", None)
    return (key,) if isinstance(key, str) and len(key) >= 4 and key != _PLACEHOLDER_KEY else ()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and anything shaped like an OpenAI key masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub(lambda m: m.group(1) + "-[redacted]", text)
