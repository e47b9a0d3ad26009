#!/usr/bin/python3
"""A gRPC test backend on Debian's python3-grpcio, without generated code (messages are raw bytes).

    /usr/bin/python3 grpc_backend.py --port P --name NAME

Prints "listening PORT" once serving. Methods of service test.Echo:
  Unary(bytes) -> b"NAME:" + bytes
  Slow(bytes)  -> sleeps float(bytes) seconds, then b"NAME"
  Stream(bytes) -> int(bytes) messages b"NAME:<i>" (server streaming)
  Collect(stream bytes) -> b"NAME:<count>:<total bytes>" (client streaming)
  Fail(bytes)  -> aborts with status int(bytes) and trailing metadata x-why: because
  SetHealth(b"SERVICE=N") -> grpc.health.v1 answers ServingStatus N for SERVICE from now on
and grpc.health.v1.Health/Check: SERVING (1) for "" and "test.Echo" until SetHealth says otherwise;
SERVICE_UNKNOWN (3, as a NOT_FOUND status) for other services. --health-delay S makes Check sleep S.
"""

import argparse
import sys
import time
from concurrent import futures

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="grpc")
    ap.add_argument("--health-delay", type=float, default=0)
    args = ap.parse_args()
    name = args.name.encode()

    def unary(request, context):
        return name + b":" + request

    def slow(request, context):
        time.sleep(float(request.decode() or "0"))
        return name

    def stream(request, context):
        for i in range(int(request.decode())):
            yield name + b":%d" % i

    def collect(request_iterator, context):
        count = total = 0
        for m in request_iterator:
            count += 1
            total += len(m)
        return name + b":%d:%d" % (count, total)

    def fail(request, context):
        context.set_trailing_metadata((("x-why", "because"),))
        context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == int(request.decode()))),
                      "failed on purpose")

    health = {"": 1, "test.Echo": 1}

    def set_health(request, context):
        service, _, status = request.decode().partition("=")
        health[service] = int(status)
        return b"ok"

    def check(request, context):
        # HealthCheckRequest{service}: field 1, a length under 128 (all the test needs)
        service = request[2:2 + request[1]].decode() if request else ""
        time.sleep(args.health_delay)
        if service not in health:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([health[service]])

    health_handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check),
    })
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "SetHealth": grpc.unary_unary_rpc_method_handler(set_health),
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler, health_handler))
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("listening %d" % port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
