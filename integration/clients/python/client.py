"""The gRPC C-core member of Switchboard's real-client matrix.

A proxyless xDS client that calls /grpc.health.v1.Health/Check on an
xds:/// target and reports which backend answered, through Debian's
python3-grpcio (C-core 1.51). Run it with /usr/bin/python3. Same command
line and output as ../goclient (see its package comment):

    /usr/bin/python3 client.py --target xds:///NAME [--count N]
        [--interval-ms M] [--timeout-ms T] [--header k=v]...
        [--cycle-header k=v1,v2,...] [--concurrency K] [--stagger-ms S]

--header adds request metadata to every call (repeatable); --cycle-header
adds metadata that changes per call: call n carries k: v[n mod len(v)].
--concurrency K makes the calls in rounds of K started together; a round
ends when every call in it ended, and --interval-ms separates rounds;
--stagger-ms S starts a round's calls S ms apart (default 0: all at once).

One JSON line per call on stdout, written when the call ends:
    {"seq":<n>,"t":<unix ms>,"backend":"<x-backend header or empty>","code":<grpc code>,"error":"<message or empty>"}
seq numbers the calls from 0 in the order they started (call n is in round n/K).
--count 0 runs until SIGINT, SIGTERM or, when stdin is a pipe, its closing.
The bootstrap comes from the file named by GRPC_XDS_BOOTSTRAP. Everything else goes to stderr.
"""

import argparse
import json
import os
import signal
import stat
import sys
import threading
import time

# Installed before the slow grpc import (a second on a busy machine), so that
# a SIGTERM while loading still ends the program cleanly.
STOP = threading.Event()
signal.signal(signal.SIGINT, lambda *_: STOP.set())
signal.signal(signal.SIGTERM, lambda *_: STOP.set())

import grpc  # noqa: E402  (after the signal handlers on purpose)

CHECK_METHOD = "/grpc.health.v1.Health/Check"
BACKEND_HEADER = "x-backend"


def non_negative(value):
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return n


def positive(value):
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return n


def header(value):
    k, sep, v = value.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError(f"{value!r} is not k=v")
    return (k, v)


def cycle_header(value):
    k, sep, v = value.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError(f"{value!r} is not k=v1,v2,...")
    return (k, v.split(","))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="dial target, e.g. xds:///echo")
    p.add_argument("--count", type=non_negative, default=0,
                   help="number of calls; 0 runs until killed or stdin closes")
    p.add_argument("--interval-ms", type=non_negative, default=10,
                   help="pause between calls in milliseconds")
    p.add_argument("--timeout-ms", type=positive, default=1000,
                   help="per-call deadline in milliseconds")
    p.add_argument("--header", type=header, action="append", default=[],
                   help="request metadata k=v sent with every call; repeatable")
    p.add_argument("--cycle-header", type=cycle_header, default=None,
                   help="request metadata k=v1,v2,...: call n carries k: v[n mod len]")
    p.add_argument("--concurrency", type=positive, default=1,
                   help="calls started together in each round")
    p.add_argument("--stagger-ms", type=non_negative, default=0,
                   help="pause between the starts of a round's calls in milliseconds")
    return p.parse_args(argv)


def backend_of(metadata):
    for key, value in metadata or ():
        if key == BACKEND_HEADER:
            return value if isinstance(value, str) else value.decode()
    return ""


def headers_of(opts, seq):
    """Returns the request metadata of call number seq."""
    if opts.cycle_header is None:
        return opts.header
    key, values = opts.cycle_header
    return opts.header + [(key, values[seq % len(values)])]


def outcome(seq, fut):
    """Describes a finished call (a future from check.future) as printed."""
    r = {"seq": seq, "t": int(time.time() * 1000), "backend": "", "code": 0, "error": ""}
    try:
        fut.result()
        r["backend"] = backend_of(fut.initial_metadata())
    except grpc.RpcError as err:
        try:
            r["backend"] = backend_of(err.initial_metadata())
        except Exception:  # not every RpcError is a Call
            pass
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        r["code"] = code.value[0]
        r["error"] = (err.details() if hasattr(err, "details") else str(err)) or ""
    return r


def round_of(check, opts, seq, n):
    """Starts calls seq..seq+n-1 together, prints each as it ends, and
    returns when all have ended."""
    lock = threading.Lock()
    left = [n]
    done = threading.Event()

    def finish(seq, fut):
        with lock:
            try:
                r = outcome(seq, fut)
                sys.stdout.write(json.dumps(r, separators=(",", ":")) + "\n")
                sys.stdout.flush()
            finally:
                # Even if printing failed (a closed stdout), the round ends.
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    for i in range(n):
        if i > 0 and opts.stagger_ms > 0:
            time.sleep(opts.stagger_ms / 1000)
        fut = check.future(b"", timeout=opts.timeout_ms / 1000,
                           metadata=headers_of(opts, seq + i) or None)
        fut.add_done_callback(lambda f, s=seq + i: finish(s, f))
    done.wait()


def main(argv):
    opts = parse_args(argv)
    stop = STOP
    # Only a pipe: a background job in a script gets /dev/null on stdin.
    if opts.count == 0 and stat.S_ISFIFO(os.fstat(0).st_mode):
        def watch_stdin():
            # os.read, not sys.stdin: a daemon thread blocked in the buffered
            # reader holds its lock, and interpreter shutdown then aborts
            # ("could not acquire lock for <stdin>"), seen in CI.
            while os.read(0, 4096):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    channel = grpc.insecure_channel(opts.target)
    # No (de)serializers: bytes in and out. b"" is an empty HealthCheckRequest.
    check = channel.unary_unary(CHECK_METHOD)
    seq = 0
    while opts.count == 0 or seq < opts.count:
        if seq > 0 and opts.interval_ms > 0 and stop.wait(opts.interval_ms / 1000):
            break
        if stop.is_set():
            break
        n = opts.concurrency if opts.count == 0 else min(opts.concurrency, opts.count - seq)
        round_of(check, opts, seq, n)
        seq += n
    channel.close()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # Skip interpreter finalization: the stdin thread and gRPC's threads
    # may still be running, and nothing is left to clean up.
    os._exit(code)
