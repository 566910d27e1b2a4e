"""Paused sessions cost disk, not memory: RSS with N paused sessions, and restart to ready.

    python3 Benchmarks/load/paused.py .build/release/countersign 100000

Creates N sessions over HTTP (16 client threads), each paused at a pending write_file
confirmation, and prints the RSS of the `countersign serve` process before and after;
then restarts the server on the same database and prints the time to /ready. The
database goes to a fresh temporary folder (or $PAUSED_DIR), removed at the end.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request, concurrent.futures as cf
BIN = sys.argv[1]; N = int(sys.argv[2])
WORKDIR = tempfile.mkdtemp(prefix="countersign-paused-", dir=os.environ.get("PAUSED_DIR"))
DB = os.path.join(WORKDIR, "p.db")
def start():
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "serve", "--port", "0", "--database", "sqlite:" + DB,
                          "--key-requests-per-minute", "0", "--session-requests-per-minute", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if "listening on http://127.0.0.1:" in line:
            port = int(line.strip().rsplit(":", 1)[1]); break
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if urllib.request.urlopen(base + "/ready").status == 200: break
        except Exception: pass
    return p, base, time.monotonic() - t0
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
def call(base, key, method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
p, base, ready = start()
key = open(DB + ".admin-key").read().strip()
def one(i):
    s = call(base, key, "POST", "/v1/sessions", {"agent": "demo"})
    r = call(base, key, "POST", f"/v1/sessions/{s['id']}/messages", {"content": f"write a.txt {i}"})
    assert r["status"] == "awaiting_confirmation"
for i in range(200): one(i)
base_rss = rss(p.pid)
t0 = time.monotonic()
with cf.ThreadPoolExecutor(16) as ex: list(ex.map(one, range(N)))
elapsed = time.monotonic() - t0
after = rss(p.pid)
print(f"created {N} paused sessions in {elapsed:.1f}s ({N/elapsed:.0f}/s)")
print(f"RSS after 200 paused: {base_rss} KiB; after {N+200}: {after} KiB; per paused session: {(after-base_rss)*1024/N:.0f} B")
p.kill(); p.wait()
p, base, ready = start()
print(f"restart to ready with {N+200} pending confirmations: {ready*1000:.0f} ms; RSS after restart {rss(p.pid)} KiB")
pending = call(base, key, "GET", "/v1/confirmations?limit=1")
print("inbox works:", len(pending["data"]) == 1)
p.kill(); p.wait()
print(f"database: {sum(os.path.getsize(os.path.join(WORKDIR, f)) for f in os.listdir(WORKDIR)) / 1e6:.0f} MB")
shutil.rmtree(WORKDIR, ignore_errors=True)
