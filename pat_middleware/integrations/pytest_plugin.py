"""pytest fixtures for apps protected by pat-middleware.

Installed, the plugin is registered through the ``pytest11`` entry point ``pat_middleware``
and its fixtures are there in every test session; ``-p no:pat_middleware`` turns it off,
and ``-p pat_middleware.integrations.pytest_plugin`` turns it on where the package is not
installed. Every fixture name starts with ``pat_``:

* ``pat_issuer`` (session): a :class:`~pat_middleware.integrations.testing.PatIssuer`, a
  type-2 issuer in this process whose key is generated once per session. ``issue(challenge)``
  and ``answer_challenge(response)`` give tokens without HTTP; ``httpx_auth()`` an
  ``httpx.Auth``; ``settings_entry`` the issuer as a settings entry.
* ``pat_settings``: a :class:`~pat_middleware.integrations.testing.PatSettings` factory,
  ``pat_settings(protect=["/signup"])`` -> ``Settings`` trusting ``pat_issuer``, with a
  generated secret and ``cookie_secure = false``; ``pat_settings.mapping(...)`` gives the
  same as a mapping (Django's ``PAT_MIDDLEWARE``).
* ``pat_policy``: ``pat_policy(**overrides)`` -> a ``Policy`` on those settings, closed when
  the test ends.
* ``pat_client``: ``pat_client(test_client)`` wraps a framework's test client so that each
  request answers a challenge from ``pat_issuer`` once (see
  :class:`~pat_middleware.integrations.testing.PatClient`).

Importing this module imports pytest and nothing of any web framework or HTTP client; the
fixtures import what they use when they are first requested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..policy import Policy
    from .testing import PatClient, PatIssuer, PatSettings


@pytest.fixture(scope="session")
def pat_issuer() -> PatIssuer:
    """A type-2 issuer in this process, one key for the whole session."""
    from .testing import PatIssuer

    return PatIssuer()


@pytest.fixture
def pat_settings(pat_issuer: PatIssuer) -> PatSettings:
    """``pat_settings(**overrides) -> Settings`` trusting ``pat_issuer``; one secret per test."""
    from .testing import PatSettings

    return PatSettings(pat_issuer)


@pytest.fixture
def pat_policy(pat_settings: PatSettings) -> Iterator[Callable[..., Policy]]:
    """``pat_policy(**overrides) -> Policy`` on ``pat_settings``; closed after the test."""
    made: list[Policy] = []

    def make(**overrides: Any) -> Policy:
        policy = pat_settings.policy(**overrides)
        made.append(policy)
        return policy

    yield make
    for policy in made:
        policy.close()


@pytest.fixture
def pat_client(pat_issuer: PatIssuer) -> Callable[[Any], PatClient]:
    """``pat_client(test_client)``: the client, answering ``pat_issuer``'s challenges."""
    from .testing import PatClient

    def wrap(client: Any) -> PatClient:
        return PatClient(client, pat_issuer)

    return wrap
