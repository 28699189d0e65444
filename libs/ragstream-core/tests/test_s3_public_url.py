"""Direct-upload URLs signed for the public S3 address (RAGSTREAM_S3_PUBLIC_URL), against a real
S3 server (SeaweedFS): the private endpoint is 127.0.0.1, the public one the same server under
the name localhost, as a client outside a cluster would reach it under another name."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from ragstream_core.settings import CoreSettings
from ragstream_core.storage import S3ObjectStore, open_object_store
from ragstream_devstack.s3 import SeaweedS3
from ragstream_devstack.testing import new_id


def settings_for(server: SeaweedS3, **extra: str) -> CoreSettings:
    return CoreSettings(
        object_store="s3",
        s3_endpoint=server.endpoint,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
        s3_bucket="ragstream-public",
        **extra,  # type: ignore[arg-type]
    )


async def test_a_presigned_put_names_the_public_host_and_the_server_accepts_it(s3_server: SeaweedS3) -> None:
    public = f"http://localhost:{s3_server.port}"
    store = open_object_store(settings_for(s3_server, s3_public_url=public + "/"))
    assert isinstance(store, S3ObjectStore)
    key = f"staging/{new_id()}"

    url = await store.presigned_put_url(key, expires_s=300)

    assert urlsplit(url).netloc == f"localhost:{s3_server.port}"
    async with httpx.AsyncClient() as http:
        response = await http.put(url, content=b"bytes from outside")
    assert response.status_code == 200, response.text
    assert await store.get_bytes(key) == b"bytes from outside"


async def test_without_a_public_url_the_endpoint_is_signed(s3_server: SeaweedS3) -> None:
    store = open_object_store(settings_for(s3_server))

    url = await store.presigned_put_url(f"staging/{new_id()}", expires_s=300)  # type: ignore[attr-defined]

    assert urlsplit(url).netloc == s3_server.endpoint


@pytest.mark.parametrize("bad", ["objects.example.com", "ftp://objects.example.com", "https://x.example/bucket"])
def test_a_public_url_that_is_not_an_origin_is_refused_saying_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match=r"RAGSTREAM_S3_PUBLIC_URL must be http\(s\)://host\[:port\]"):
        CoreSettings(s3_public_url=bad)
