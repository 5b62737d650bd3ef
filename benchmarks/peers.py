"""The peers, set up offline: Kameleoon's official SDK and posthog, both pointed at the sink.

The official SDK (kameleoon-client-python) fetches its configuration from Kameleoon's CDN when
it starts, gets an OAuth token from Kameleoon's API, and posts tracking data to the Data API,
all over ``https://`` URLs built from fixed domains (``UrlProvider``); it has no offline or
custom-URL mode. All its HTTP goes through one ``NetProvider`` object, which
``KameleoonClient.__init__`` makes as ``NetProviderImpl()``. We hand it a subclass that keeps
the SDK's real aiohttp transport and only rewrites each request's scheme and host to the local
sink, which serves an empty configuration, a token, and 202 for tracking. Everything else in
the SDK (its visitor store, tracking thread, batching, retries) runs as shipped.

posthog takes ``host=`` directly. ``harness.guard_network`` additionally refuses any lookup or
connection off the loopback, so a missed default fails rather than leaves the machine.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from kameleoon import KameleoonClient, KameleoonClientConfig
from kameleoon import kameleoon_client as sdk_module
from kameleoon.network.net_provider import Request, Response
from kameleoon.network.net_provider_impl import NetProviderImpl

__all__ = ["make_posthog", "make_sdk_client"]

SITE_CODE = "benchsite1"


class LocalNetProvider(NetProviderImpl):  # type: ignore[misc]
    """The SDK's own aiohttp transport, with every URL's scheme and host replaced by ``base``."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    async def run_request(self, request: Request) -> Response:
        parts = urlsplit(request.url)
        request.url = self.base + parts.path + (f"?{parts.query}" if parts.query else "")
        return await super().run_request(request)


def make_sdk_client(base_url: str, *, ready: bool = True) -> KameleoonClient:
    """A ``KameleoonClient`` whose every request goes to ``base_url``; waits for its config."""
    # The SDK warns on every client without a top-level domain; give it one, as users do.
    config = KameleoonClientConfig(
        "benchmark-client-id", "benchmark-client-secret", top_level_domain="example.com"
    )
    original = sdk_module.NetProviderImpl
    sdk_module.NetProviderImpl = lambda: LocalNetProvider(base_url)
    try:
        client = KameleoonClient(SITE_CODE, config)
    finally:
        sdk_module.NetProviderImpl = original
    if ready and not client.wait_init(10_000):
        raise RuntimeError(f"the Kameleoon SDK did not get its configuration from {base_url}")
    return client


def close_sdk_client(client: KameleoonClient) -> None:
    client.__del__()


def make_posthog(base_url: str, **options: Any) -> Any:
    """A posthog ``Client`` sending to ``base_url``, defaults otherwise unless overridden."""
    from posthog.client import Client

    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    return Client("phc_benchmark_project_key", host=base_url, **options)
