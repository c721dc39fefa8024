"""Host metadata: the cloud probes against a local fake of each cloud's metadata service.

The fake speaks each service's real paths and headers (AWS IMDSv2: a PUT for a session token,
then GETs carrying it; Azure IMDS: ``Metadata: true`` and an ``api-version``; GCP: the
``Metadata-Flavor: Google`` header both ways) and refuses requests without them, as the real
services do. It listens on loopback; the probe is pointed at it with ``base_url``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit

import pytest

from tokenline import sdk
from tokenline.sdk._cloud import TIMEOUT_S, probe
from tokenline.sdk._host import HostDetector

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.contract

AWS_TOKEN = "AQAEAtokenline-test-token=="
AWS_DOCUMENT = {
    "accountId": "123456789012",
    "availabilityZone": "eu-west-1b",
    "instanceId": "i-0abc123def4567890",
    "instanceType": "m7i.large",
    "region": "eu-west-1",
}
AZURE_COMPUTE = {
    "location": "westeurope",
    "name": "api-vm-3",
    "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
    "vmSize": "Standard_D2s_v5",
}
GCP_ZONE = "projects/123456789/zones/europe-west1-b"
GCP_ID = "4520031799277581759"


class FakeMetadata:
    """One loopback server answering as AWS, Azure and GCP; ``hang`` makes it never answer."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def do_PUT(self) -> None:
                self._answer("PUT")

            def do_GET(self) -> None:
                self._answer("GET")

            def _answer(self, method: str) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append((method, self.path, headers))
                if fake.hang.is_set():
                    fake.release.wait(10)  # a service that accepted and never answers
                    return
                status, body, extra = fake.route(method, self.path, headers)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, str, dict[str, str]]:
        """Each cloud's rules for the paths the probe asks."""
        split = urlsplit(path)
        if split.path == "/latest/api/token":
            if method != "PUT" or "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                return 405 if method != "PUT" else 400, "", {}
            return 200, AWS_TOKEN, {}
        if split.path == "/latest/dynamic/instance-identity/document":
            if headers.get("x-aws-ec2-metadata-token") != AWS_TOKEN:
                return 401, "", {}
            return 200, json.dumps(AWS_DOCUMENT), {"Content-Type": "application/json"}
        if split.path == "/metadata/instance/compute":
            if headers.get("metadata") != "true" or "api-version" not in parse_qs(split.query):
                return 400, json.dumps({"error": "Bad request"}), {}
            return 200, json.dumps(AZURE_COMPUTE), {"Content-Type": "application/json"}
        if split.path.startswith("/computeMetadata/v1/instance/"):
            if headers.get("metadata-flavor") != "Google":
                return 403, "Missing Metadata-Flavor:Google header.", {}
            value = {"zone": GCP_ZONE, "id": GCP_ID}.get(split.path.rsplit("/", 1)[-1])
            if value is None:
                return 404, "", {}
            return 200, value, {"Metadata-Flavor": "Google"}
        return 404, "", {}

    def __enter__(self) -> FakeMetadata:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    with FakeMetadata() as fake:
        yield fake


@pytest.mark.parametrize(
    ("cloud", "region", "instance_id"),
    [
        ("aws", "eu-west-1", AWS_DOCUMENT["instanceId"]),
        ("azure", "westeurope", AZURE_COMPUTE["vmId"]),
        ("gcp", "europe-west1", GCP_ID),
    ],
)
def test_each_cloud_is_asked_the_way_it_answers(
    metadata: FakeMetadata, cloud: str, region: str, instance_id: str
) -> None:
    assert probe(cloud, metadata.url) == {"region": region, "instance_id": instance_id}


def test_aws_uses_an_imdsv2_session_token(metadata: FakeMetadata) -> None:
    probe("aws", metadata.url)
    (put, get) = metadata.requests
    assert put[:2] == ("PUT", "/latest/api/token")
    assert int(put[2]["x-aws-ec2-metadata-token-ttl-seconds"]) > 0
    assert get[0] == "GET"
    assert get[2]["x-aws-ec2-metadata-token"] == AWS_TOKEN


def test_a_refused_request_raises(metadata: FakeMetadata) -> None:
    metadata.route = lambda *_: (401, "", {})  # type: ignore[method-assign]
    with pytest.raises(HTTPError):
        probe("aws", metadata.url)


def test_a_hung_service_is_abandoned_within_the_timeout(metadata: FakeMetadata) -> None:
    metadata.hang.set()
    for cloud in ("aws", "azure", "gcp"):
        started = time.perf_counter()
        with pytest.raises(OSError, match="timed out"):
            probe(cloud, metadata.url)
        # Bounded, generously (a busy machine is slow); without the timeout it would hang.
        assert time.perf_counter() - started < TIMEOUT_S + 10


def test_detection_fills_in_the_host_off_the_callers_path(metadata: FakeMetadata) -> None:
    metadata.hang.set()
    hung = HostDetector({}, "api", cloud="gcp", metadata_url=metadata.url)
    hung.start()
    # The caller never waits for the service: start() returned while detection still runs.
    assert not hung.wait(0)
    assert hung.host["cloud"] is None
    assert hung.host["service_name"] == "api"
    assert hung.wait(TIMEOUT_S * 2 + 1)  # abandoned after the timeout: nothing merged
    assert hung.host["cloud"] is None

    metadata.hang.clear()
    answered = HostDetector({}, "api", cloud="gcp", metadata_url=metadata.url)
    answered.start()
    assert answered.wait(5)
    assert answered.host["cloud"] == "gcp"
    assert answered.host["region"] == "europe-west1"
    assert answered.host["instance_id"] == GCP_ID
    assert answered.host["service_name"] == "api"


def test_a_hung_service_never_delays_a_metered_call(metadata: FakeMetadata) -> None:
    metadata.hang.set()
    runtime = sdk.configure(emitter=sdk.InMemoryEmitter(), tenant_id="acme", strict=True)
    try:
        runtime.host = HostDetector({}, cloud="aws", metadata_url=metadata.url)
        runtime.host.start()
        sdk.record(provider="openai", model="gpt-4o", input_tokens=1)
        assert not runtime.host.wait(0)  # recorded while detection was still hanging
        assert runtime.host.wait(TIMEOUT_S * 2 + 1)  # both AWS requests time out, then it ends
        assert runtime.host.host["cloud"] is None
    finally:
        sdk.close(1)
    (event,) = runtime.emitter.events  # type: ignore[attr-defined]
    assert event["host"]["cloud"] is None
