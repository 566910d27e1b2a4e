#!/usr/bin/env python3
"""Load test of the whole confirmation cycle over HTTP (Python 3 standard library only).

Starts (or targets) `countersign serve` with an agent whose model is a local
OpenAI-compatible stub that answers at once, then drives N full conversations at
concurrency C:

    create session -> send message -> (run pauses: write_file pending) -> approve -> done

and prints conversations per second, p50/p95/p99 of send->pending and approve->done, and
the server's CPU time per conversation (utime+stime from /proc/<pid>/stat).

It also prints approve->tool.started: from the moment the client sends the approve request
to the `created_at` of the session's `tool.started` event, read back from the event log
after the timed run (so it adds no load while measuring). The server writes that
timestamp in the commit that claims the call, right before the tool runs; a decision
that lets the run go on makes that claim in its own commit, so the decision's and the
tool's events share one timestamp. Event timestamps have whole milliseconds (rounded
down), so this figure reads up to 1 ms low and can go a little below 0; the
decided->tool.started line is the same gap measured between the two server timestamps.

The stub runs in its own process (so it does not share the driver's GIL). It speaks the
Chat Completions wire format, streamed (SSE) or whole: a user message gets one
`write_file` call, a tool result gets a final text.

    python3 Benchmarks/load/load.py --bin .build-release/release/countersign -n 2000 -c 16

With --baseline OLD it compares two builds: each round runs OLD, then --bin, back to back,
and a table gives both builds' figures and the change of the medians.
"""

import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# --------------------------------------------------------------------------------------
# The model stub


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The handler writes the headers and the body in separate send() calls. With Nagle's
    # algorithm on, the body then waits for the ACK of the headers, which the server's
    # HTTP client delays by up to 40 ms: every model call took 40 ms and the driver
    # measured that instead of the server.
    disable_nagle_algorithm = True
    counter = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        last = (body.get("messages") or [{}])[-1]
        created = int(time.time())
        if last.get("role") == "tool":
            message = {"role": "assistant", "content": "Done."}
            finish = "stop"
            delta_chunks = [{"role": "assistant", "content": ""}, {"content": "Done."}]
        else:
            with StubHandler.lock:
                StubHandler.counter += 1
                n = StubHandler.counter
            arguments = json.dumps({"path": f"load/{n}.txt", "content": "x"}, separators=(",", ":"))
            call = {"id": f"call_{n}", "type": "function", "function": {"name": "write_file", "arguments": arguments}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
            half = len(arguments) // 2
            delta_chunks = [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"index": 0, "id": call["id"], "type": "function", "function": {"name": "write_file", "arguments": ""}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
            ]
        usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        if body.get("stream"):
            base = {"id": "chatcmpl-load", "object": "chat.completion.chunk", "created": created, "model": body.get("model")}
            parts = []
            for delta in delta_chunks:
                parts.append(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]))
            parts.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
            parts.append(dict(base, choices=[], usage=usage))
            payload = "".join("data: " + json.dumps(p, separators=(",", ":")) + "\n\n" for p in parts)
            payload = (payload + "data: [DONE]\n\n").encode()
            content_type = "text/event-stream"
        else:
            payload = json.dumps({
                "id": "chatcmpl-load", "object": "chat.completion", "created": created, "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage,
            }).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def run_stub(port_queue):
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


# --------------------------------------------------------------------------------------
# The server


def start_server(binary, workdir, stub_port, stream):
    config = os.path.join(workdir, "load.yaml")
    with open(config, "w") as f:
        f.write(
            "agents:\n"
            "  - name: load\n"
            f"    model: {{provider: openai, name: load-model, base_url: \"http://127.0.0.1:{stub_port}/v1\", "
            f"stream: {'true' if stream else 'false'}}}\n"
            "    instructions: You write files.\n"
            "    tools: [write_file, read_file]\n"
        )
    database = os.path.join(workdir, "load.db")
    # One API key drives every conversation: lift the per-key and per-session limits.
    env = dict(os.environ, COUNTERSIGN_LOG_LEVEL="error", COUNTERSIGN_KEY_REQUESTS_PER_MINUTE="0",
               COUNTERSIGN_SESSION_REQUESTS_PER_MINUTE="0")
    process = subprocess.Popen(
        [binary, "serve", "--port", "0", "--database", f"sqlite:{database}", "--config", config],
        stdout=subprocess.PIPE, stderr=sys.stderr, env=env, text=True)
    port = None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"Countersign listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    if port is None:
        process.kill()
        raise SystemExit("countersign did not start")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    with open(database + ".admin-key") as f:
        key = f.read().strip()
    return process, port, key


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# The driver


class Client:
    def __init__(self, host, port, key):
        self.connection = http.client.HTTPConnection(host, port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def get(self, path):
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"GET {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def post(self, path, body):
        self.connection.request("POST", path, json.dumps(body), self.headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"POST {path}: {response.status} {data[:300]!r}")
        return json.loads(data)


def conversation(client, agent):
    session = client.post("/v1/sessions", {"agent": agent})["id"]
    t0 = time.perf_counter()
    # The stub answers any message with a write_file call; the demo agent needs its syntax.
    content = "write load.txt x" if agent == "demo" else "write a file"
    reply = client.post(f"/v1/sessions/{session}/messages", {"content": content})
    t1 = time.perf_counter()
    if reply["status"] != "awaiting_confirmation" or not reply["pending_confirmations"]:
        raise RuntimeError(f"expected a pending confirmation, got {reply}")
    confirmation = reply["pending_confirmations"][0]["id"]
    approve_sent = time.time()
    t1 = time.perf_counter()
    decided = client.post(f"/v1/confirmations/{confirmation}/decision", {"decision": "approve"})
    t2 = time.perf_counter()
    if decided["run"]["status"] != "completed":
        raise RuntimeError(f"expected a completed run, got {decided}")
    return t1 - t0, t2 - t1, (session, approve_sent)


def drive(host, port, key, agent, total, concurrency, rate=None):
    """Runs `total` conversations on `concurrency` connections. With `rate`, conversation i
    starts no earlier than i / rate seconds after the start (an open-loop schedule: a
    conversation that falls behind starts at once), so latencies are those at that offered
    load rather than at saturation."""
    send, approve, errors, approvals = [], [], [], []
    lock = threading.Lock()
    remaining = [total]
    started = [0]
    begin = [0.0]

    def worker():
        client = Client(host, port, key)
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
                slot = started[0]
                started[0] += 1
            if rate:
                delay = begin[0] + slot / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            try:
                a, b, approval = conversation(client, agent)
                with lock:
                    send.append(a)
                    approve.append(b)
                    approvals.append(approval)
            except Exception as error:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(error))
                client = Client(host, port, key)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    begin[0] = start
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, send, approve, errors, approvals


def event_time(text):
    # 2026-11-26T06:04:29.123Z (whole milliseconds, UTC)
    stamp = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def tool_start_latencies(host, port, key, approvals):
    """approve sent -> tool.started and confirmation.decided -> tool.started, from the event logs."""
    client = Client(host, port, key)
    from_approve, from_decided = [], []
    for session, approve_sent in approvals:
        events = client.get(f"/v1/sessions/{session}/events?after=0&limit=1000")["data"]
        started = [e for e in events if e["type"] == "tool.started"]
        decided = [e for e in events if e["type"] == "confirmation.decided"]
        if not started:
            continue
        start = event_time(started[-1]["created_at"])
        from_approve.append(start - approve_sent)
        if decided:
            from_decided.append(start - event_time(decided[-1]["created_at"]))
    return from_approve, from_decided


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure(host, port, key, pid, args):
    """Warms up, runs the timed conversations, prints the figures and returns them."""
    if args.warmup:
        drive(host, port, key, args.agent, args.warmup, min(args.concurrency, args.warmup))
    cpu_before = cpu_ms(pid) if pid else None
    wall, send, approve, errors, approvals = drive(
        host, port, key, args.agent, args.conversations, args.concurrency, args.rate)
    cpu_after = cpu_ms(pid) if pid else None
    tool_start, decided_start = tool_start_latencies(host, port, key, approvals)

    done = len(send)
    offered = f", offered {args.rate:g} conv/s" if args.rate else ""
    print(f"conversations:         {done} ok, {len(errors)} failed, concurrency {args.concurrency}{offered}, "
          f"{wall:.2f} s")
    print(f"throughput:            {done / wall:.1f} conv/s")
    figures = {"throughput (conv/s)": done / wall}
    for name, values in (("send->pending", send), ("approve->done", approve),
                         ("approve->tool.started", tool_start), ("decided->tool.started", decided_start)):
        ms = [v * 1000 for v in values]
        print(f"{name:21} p50 {percentile(ms, 50):7.2f} ms   p95 {percentile(ms, 95):7.2f} ms   "
              f"p99 {percentile(ms, 99):7.2f} ms   mean {statistics.fmean(ms) if ms else float('nan'):7.2f} ms")
        if name != "decided->tool.started":
            figures[f"{name} p50 (ms)"] = percentile(ms, 50)
        if name == "approve->tool.started":
            figures[f"{name} p99 (ms)"] = percentile(ms, 99)
    if cpu_before is not None and done:
        cpu = (cpu_after - cpu_before) / done
        print(f"server CPU:            {cpu:.2f} ms per conversation "
              f"({(cpu_after - cpu_before) / 1000 / wall * 100:.0f}% of one core)")
        figures["server CPU (ms/conv)"] = cpu
    for error in errors[:5]:
        print("error:", error, file=sys.stderr)
    figures["failed"] = len(errors)
    return figures


def run_server(binary, args, stub_port, parent):
    """Starts a server on a new folder under `parent`, measures it and stops it."""
    workdir = tempfile.mkdtemp(prefix="countersign-load-", dir=parent)
    server, port, key = start_server(binary, workdir, stub_port, stream=not args.no_stream)
    print(f"server {binary} pid {server.pid} on :{port}; model stub on :{stub_port}", file=sys.stderr)
    try:
        return measure("127.0.0.1", port, key, server.pid, args)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def print_comparison(results, rounds):
    """One line per figure: every run of each build, and the change of the medians."""
    print(f"\ncomparison: {rounds} round(s), each the baseline then the candidate, back to back")
    print(f"{'figure':30} {'baseline':>26} {'candidate':>26} {'medians':>9}")
    for name in results["baseline"][0]:
        if name == "failed":
            continue
        before = [run[name] for run in results["baseline"]]
        after = [run[name] for run in results["candidate"]]
        change = (statistics.median(after) / statistics.median(before) - 1) * 100 if statistics.median(before) else 0
        print(f"{name:30} {' '.join(f'{v:.2f}' for v in before):>26} {' '.join(f'{v:.2f}' for v in after):>26} "
              f"{change:+8.1f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=None, help="countersign executable (default: release build, else debug)")
    parser.add_argument("--url", help="target a running server instead (http://host:port); needs --key and --pid")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--pid", type=int, help="server pid for CPU accounting with --url")
    parser.add_argument("--agent", default="load", help="agent name: load (the stub model, default) or demo (the offline model, "
                        "for comparison); with --url its model must answer like the stub")
    parser.add_argument("-n", "--conversations", type=int, default=1000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--data-dir", default=None,
                        help="keep the server's database and workspaces in a new folder under this one (default: a "
                             "temporary folder, deleted at the end; see README.md for why repeated disk runs want this)")
    parser.add_argument("--rate", type=float, default=None,
                        help="offered load in conversations/s (open loop); default: as fast as the connections go")
    parser.add_argument("--no-stream", action="store_true", help="configure the model with stream: false")
    parser.add_argument("--baseline", metavar="BIN",
                        help="also measure this countersign executable and compare: each round runs the baseline, "
                             "then --bin, on a fresh server each, back to back")
    parser.add_argument("--rounds", type=int, default=3, help="rounds with --baseline (default 3)")
    args = parser.parse_args()

    if args.url:
        if args.baseline:
            raise SystemExit("--baseline starts its own servers; it does not go with --url")
        match = re.match(r"https?://([^:/]+):(\d+)", args.url)
        figures = measure(match.group(1), int(match.group(2)), args.key, args.pid, args)
        sys.exit(1 if figures["failed"] else 0)

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [args.bin] if args.bin else [
        os.path.join(root, ".build-release/release/countersign"), os.path.join(root, ".build/release/countersign"),
        os.path.join(root, ".build/debug/countersign")]
    binary = next((c for c in candidates if c and os.path.exists(c)), None)
    if binary is None:
        raise SystemExit("no countersign binary: swift build -c release --product countersign")
    if args.baseline and not os.path.exists(args.baseline):
        raise SystemExit(f"no baseline executable at {args.baseline}")

    stub = None
    # Every run's folder goes under one parent that is deleted only at the end: deleting
    # a run's files between runs would slow the next run's file creation (README.md).
    parent = None
    failed = 0
    try:
        queue = multiprocessing.Queue()
        stub = multiprocessing.Process(target=run_stub, args=(queue,), daemon=True)
        stub.start()
        stub_port = queue.get(timeout=10)
        if args.data_dir:
            os.makedirs(args.data_dir, exist_ok=True)
            parent = args.data_dir
        else:
            parent = tempfile.mkdtemp(prefix="countersign-load-runs-")
        if args.baseline:
            results = {"baseline": [], "candidate": []}
            for round_number in range(1, args.rounds + 1):
                for role, executable in (("baseline", args.baseline), ("candidate", binary)):
                    print(f"\n# round {round_number}, {role}: {executable}")
                    results[role].append(run_server(executable, args, stub_port, parent))
                    failed += results[role][-1]["failed"]
            print_comparison(results, args.rounds)
        else:
            failed = run_server(binary, args, stub_port, parent)["failed"]
    finally:
        if stub:
            stub.terminate()
        if parent and not args.data_dir:
            shutil.rmtree(parent, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
