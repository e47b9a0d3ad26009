#!/usr/bin/python3
"""A gRPC test backend on Debian's python3-grpcio, without generated code (messages are raw bytes).

    /usr/bin/python3 grpc_backend.py --port P --name NAME

Prints "listening PORT" once serving. Methods of service test.Echo:
  Unary(bytes) -> b"NAME:" + bytes
  Slow(bytes)  -> sleeps float(bytes) seconds, then b"NAME"
  Stream(bytes) -> int(bytes) messages b"NAME:<i>" (server streaming)
  Collect(stream bytes) -> b"NAME:<count>:<total bytes>" (client streaming)
  Fail(bytes)  -> aborts with status int(bytes) and trailing metadata x-why: because
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

    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
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
