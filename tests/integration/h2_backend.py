#!/usr/bin/python3
"""An HTTP/2 echo backend for the tests, on Debian's python3-h2 (cleartext, prior knowledge).

    /usr/bin/python3 h2_backend.py --port P [--host 127.0.0.1] --name NAME

Prints "listening PORT" once serving. Every request is answered 200, `content-type:
application/json`, with what arrived: {"backend", "headers" (pseudo-headers first, as received),
"trailers", "body_bytes"}, and ends with the trailer `x-echo-trailer: NAME` (so that tests see
trailers pass back). One thread per connection; small on purpose.
"""

import argparse
import json
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def serve(sock, name):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = {"headers": [list(h) for h in ev.headers], "trailers": [], "body_bytes": 0}
                    if ev.stream_ended is not None:
                        answer(conn, ev.stream_id, streams.pop(ev.stream_id), name)
                elif isinstance(ev, h2.events.DataReceived):
                    streams[ev.stream_id]["body_bytes"] += len(ev.data)
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    streams[ev.stream_id]["trailers"] = [list(h) for h in ev.headers]
                    if ev.stream_ended is not None:
                        answer(conn, ev.stream_id, streams.pop(ev.stream_id), name)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in streams:
                    answer(conn, ev.stream_id, streams.pop(ev.stream_id), name)
                elif isinstance(ev, h2.events.StreamReset):
                    streams.pop(ev.stream_id, None)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def answer(conn, sid, got, name):
    got["backend"] = name
    body = json.dumps(got).encode()
    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json")])
    conn.send_data(sid, body)
    conn.send_headers(sid, [("x-echo-trailer", name)], end_stream=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="h2")
    args = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(64)
    print("listening %d" % srv.getsockname()[1], flush=True)
    while True:
        s, _ = srv.accept()
        threading.Thread(target=serve, args=(s, args.name), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
