#!/usr/bin/env python3
"""Quick figures for the echo binary (issue 2): idle context switches and CPU,
RSS, SIGINT-to-exit with no connection, and last-close-to-exit.

Usage: cargo build --release && python3 benches/measure_echo.py target/release/graceful-server
"""
import subprocess, time, os, glob, socket, signal, statistics, sys
B = sys.argv[1]
def start():
    p = subprocess.Popen([B, "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    port = int(line.strip().rsplit(":",1)[1])
    return p, port
def ctx(pid):
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/status"):
        for l in open(f):
            if "ctxt_switches" in l: t += int(l.split()[1])
    return t
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return int(f[11]) + int(f[12])
p, port = start()
time.sleep(0.5)
c0, u0 = ctx(p.pid), cpu(p.pid); time.sleep(3); c1, u1 = ctx(p.pid), cpu(p.pid)
rss = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].strip()
print(f"idle: {(c1-c0)/3:.1f} context switches/s, cpu {(u1-u0)/3/os.sysconf('SC_CLK_TCK')*100:.2f}%, {rss}")
p.kill(); p.wait()
# signal to exit, no connections
ts = []
for i in range(20):
    p, port = start(); time.sleep(0.05)
    t = time.perf_counter(); p.send_signal(signal.SIGINT); p.wait(); ts.append(time.perf_counter()-t)
print(f"signal-to-exit (no connections): median {statistics.median(ts)*1000:.2f} ms, max {max(ts)*1000:.2f} ms")
ts = []
for i in range(20):
    p, port = start()
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x"); s.recv(1)
    p.send_signal(signal.SIGINT); time.sleep(0.05)
    t = time.perf_counter(); s.close(); p.wait(); ts.append(time.perf_counter()-t)
print(f"last-close-to-exit: median {statistics.median(ts)*1000:.2f} ms, max {max(ts)*1000:.2f} ms")
