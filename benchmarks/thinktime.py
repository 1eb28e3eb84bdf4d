#!/usr/bin/env python3
"""Think-time clients for measurement 5: what a real, slow client does.

Each of CLIENTS threads keeps its own `requests.Session` (one keep-alive
connection, reused), sends GET URL, checks for 200 and the body, then sleeps a
random 5-30 ms before the next request, until SECS have passed. Nothing is
retried: a refused, reset or timed-out request is a failure.

Prints one JSON object on stdout: requests, failures, the first few failure
messages, throughput (requests per second of the run) and latency
percentiles in microseconds.

    pip install requests
    python3 benchmarks/thinktime.py --url http://127.0.0.1:8080/ --clients 16 --secs 5
"""

import argparse
import json
import random
import sys
import threading
import time

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError:
    print(
        "thinktime.py: the Python module 'requests' is missing; "
        "install it with `pip install requests`",
        file=sys.stderr,
    )
    sys.exit(3)

BODY = b"Hello, world!"


def client(url, deadline, think, seed, out):
    rng = random.Random(seed)
    session = requests.Session()
    # Explicitly no retries (also requests' default): a failure must show.
    adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=1)
    session.mount("http://", adapter)
    latencies, failures, messages = [], 0, []
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            response = session.get(url, timeout=5)
            ok = response.status_code == 200 and response.content == BODY
            if not ok:
                raise RuntimeError(f"status {response.status_code}, body {response.content[:40]!r}")
            latencies.append((time.perf_counter() - start) * 1e6)
        except Exception as error:  # every kind of failure counts
            failures += 1
            if len(messages) < 5:
                messages.append(f"{type(error).__name__}: {error}"[:200])
        time.sleep(rng.uniform(*think) / 1000.0)
    session.close()
    out.append((latencies, failures, messages))


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--secs", type=float, default=5.0)
    parser.add_argument("--think-ms", type=float, nargs=2, default=(5.0, 30.0))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    out = []
    started = time.monotonic()
    deadline = started + args.secs
    threads = [
        threading.Thread(
            target=client,
            args=(args.url, deadline, tuple(args.think_ms), args.seed * 1000 + i, out),
        )
        for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    latencies = [value for (lat, _, _) in out for value in lat]
    failures = sum(f for (_, f, _) in out)
    messages = [m for (_, _, ms) in out for m in ms][:5]
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "failures": failures,
                "failure_messages": messages,
                "rps": len(latencies) / elapsed,
                "p50_us": percentile(latencies, 50),
                "p99_us": percentile(latencies, 99),
                "clients_served": sum(1 for (lat, _, _) in out if lat),
            }
        )
    )


if __name__ == "__main__":
    main()
