"""Shared fixtures.

``fake_openai`` is a :class:`chainvoice.testing.FakeOpenAI` whose every request is
checked against OpenAI's OpenAPI spec (``tests/openapi/``); a test that sends a request
the real API would refuse fails at teardown with the list of violations. A test that
sends bad requests on purpose takes them with ``fake_openai.take_violations()``.

``make_fake_openai(**options)`` builds more such fakes (e.g. ``FakeOpenAI.compatible``
ones, or with a latency profile); each is checked the same way at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from openapi.validator import SpecValidator

if TYPE_CHECKING:
    from chainvoice.testing import FakeOpenAI

# ``pytester`` runs inner pytest sessions (to prove a fixture fails the tests it should).
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def openai_spec() -> SpecValidator:
    """The validator for the committed subset of OpenAI's OpenAPI spec."""
    return SpecValidator.load()


@pytest.fixture
def make_fake_openai(
    openai_spec: SpecValidator,
) -> Iterator[Callable[..., FakeOpenAI]]:
    """Build spec-checked FakeOpenAI instances; all are checked for violations at teardown.

    ``make_fake_openai(compatible=True, ...)`` builds ``FakeOpenAI.compatible(...)``.
    """
    from chainvoice.testing import FakeOpenAI

    made: list[FakeOpenAI] = []

    def make(*, compatible: bool = False, **options: Any) -> FakeOpenAI:
        options.setdefault("check_request", openai_spec.check_request)
        options.setdefault("check_response", openai_spec.check_response)
        fake = FakeOpenAI.compatible(**options) if compatible else FakeOpenAI(**options)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.assert_no_violations()


@pytest.fixture
def fake_openai(make_fake_openai: Callable[..., FakeOpenAI]) -> FakeOpenAI:
    """A FakeOpenAI checked against the spec: any violation fails the test at teardown."""
    return make_fake_openai()
