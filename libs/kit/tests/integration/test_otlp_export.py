"""With OTEL_EXPORTER_OTLP_ENDPOINT set, a service's spans go to `<endpoint>/v1/traces` over
OTLP/HTTP (what compose points at Jaeger). A collector stub in this process receives them from a
service started in a child process (the tracer provider is global: the test's own stays clean).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

pytestmark = pytest.mark.integration

CHILD = """
from fastapi import APIRouter
from fastapi.testclient import TestClient
from kit.app import create_app
from kit.settings import ServiceSettings
from kit.tracing import shutdown_tracing

class ProbeSettings(ServiceSettings):
    service_name = "otlp-probe"

router = APIRouter()

@router.get("/things/{thing_id}")
async def thing(thing_id: str) -> dict[str, str]:
    return {"thing": thing_id}

app = create_app(ProbeSettings(), title="probe", routers=[router])
with TestClient(app) as client:
    assert client.get("/things/7").status_code == 200
shutdown_tracing()
"""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_exported_over_otlp_when_the_endpoint_is_set(
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    endpoint, received = collector
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "SHOP_ENV": "test", "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert received, "nothing reached the collector"
    assert {path for path, _ in received} == {"/v1/traces"}
    spans = []
    for _, body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert attributes["service.name"] == "otlp-probe"
            spans += [s.name for scope in resource.scope_spans for s in scope.spans]
    assert "GET /things/{thing_id}" in spans
