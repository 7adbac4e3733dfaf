"""A small FastAPI shop, instrumented the standard way: opentelemetry-instrumentation-fastapi makes
the server spans, opentelemetry-exporter-otlp-proto-http sends them (protobuf) to the endpoint in
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. The only Sentinel-specific code is `tag`: the tenant of the
request becomes the `tenant.id` attribute of its server span.

usage: python app.py PORT
"""

import sys

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

app = FastAPI()


def tag(request: Request) -> None:
    """The few lines an app adds: name the tenant on the current (server) span."""
    tenant = request.headers.get("x-tenant")
    if tenant:
        trace.get_current_span().set_attribute("tenant.id", tenant)


@app.get("/orders/{order_id}")
async def order(order_id: int, request: Request, fail: int = 0):
    tag(request)
    if fail:
        raise HTTPException(status_code=500, detail="payment backend down")
    return {"order": order_id}


@app.get("/health")
async def health():
    return {"ok": True}


FastAPIInstrumentor.instrument_app(app)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
