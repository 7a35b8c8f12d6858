#!/usr/bin/python3
"""Event intake throughput: POST /v1/events with batches of 1 and of 100 events, from 1 and from
4 concurrent keep-alive clients, against `gnnrec serve` on a fresh store on this disk.

Each client is its own process (the Python client's own cost is not shared under one GIL) and
posts as fast as it is answered for DURATION seconds; every answered request is a committed,
synced transaction's worth of events (the store commits with synchronous = FULL). The server's
/metrics give the commits, so events per commit shows the group commit at work. Prints a
Markdown table and writes it to bench/out/intake.md.

    cmake -S . -B build && cmake --build build -j2 && bench/intake_bench.py
Env: GNNREC_BIN (build/gnnrec), DURATION (5 s per row), OUT (bench/out).
"""
import http.client
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GNNREC_BIN") or os.path.join(HERE, "build", "gnnrec")
DURATION = float(os.environ.get("DURATION", "5"))
OUT = os.environ.get("OUT") or os.path.join(HERE, "bench", "out")
ROWS = [(1, 1), (1, 4), (100, 1), (100, 4)]  # (events per request, clients)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port, batch, cid, deadline, results):
    """Posts batches until deadline; puts (requests, events, latencies) on results."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Content-Type": "application/json"}
    lat, events, k = [], 0, 0
    while time.time() < deadline:
        body = json.dumps([{"user": f"c{cid}", "item": f"i{k}-{j}", "weight": 1.0}
                           for j in range(batch)]).encode()
        k += 1
        t0 = time.perf_counter()
        conn.request("POST", "/v1/events", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t0)
        if r.status != 200:
            raise SystemExit(f"client {cid}: status {r.status}")
        events += batch
    conn.close()
    results.put((len(lat), events, lat))


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1))


def run_row(port, batch, clients):
    commits0 = metric(port, "gnnrec_event_commits_total")
    results = mp.Queue()
    deadline = time.time() + DURATION
    procs = [mp.Process(target=client, args=(port, batch, c, deadline, results))
             for c in range(clients)]
    t0 = time.time()
    for p in procs:
        p.start()
    got = [results.get(timeout=DURATION + 60) for _ in procs]
    for p in procs:
        p.join()
    secs = time.time() - t0
    commits = metric(port, "gnnrec_event_commits_total") - commits0
    reqs = sum(g[0] for g in got)
    events = sum(g[1] for g in got)
    lat = sorted(x for g in got for x in g[2])
    return {"batch": batch, "clients": clients, "req_s": reqs / secs, "ev_s": events / secs,
            "per_commit": events / commits if commits else 0.0,
            "p50": lat[len(lat) // 2] * 1e3,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3}


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN}: build gnnrec first (or set GNNREC_BIN)")
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="intake-bench-", dir=OUT)  # on this disk, not a tmpfs
    port = free_port()
    log = open(os.path.join(OUT, "intake_serve.log"), "w")
    srv = subprocess.Popen([BIN, "serve", "--db", os.path.join(tmp, "store.sqlite"),
                            "--listen", f"127.0.0.1:{port}"], stderr=log)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        rows = [run_row(port, b, c) for b, c in ROWS]
    finally:
        srv.terminate()
        srv.wait(30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["| events/request | clients | requests/s | events/s | events/commit | p50 ms | "
             "p99 ms |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['clients']} | {r['req_s']:,.0f} | {r['ev_s']:,.0f} | "
                     f"{r['per_commit']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} |")
    table = "\n".join(lines)
    with open(os.path.join(OUT, "intake.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
