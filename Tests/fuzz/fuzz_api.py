#!/usr/bin/env python3
"""Fuzz Countersign's native API v1 from its OpenAPI document, against a live server.

What it does, in order:

1. Starts `countersign serve --port 0 --database sqlite:$TMP/fuzz.db` and reads the
   bootstrap admin key from `$TMP/fuzz.db.admin-key`.
2. Seeds real objects so that path parameters can point at them: sessions of the
   built-in `demo` agent, pending confirmations (`write a.txt hi`), and a throwaway
   API key to revoke.
3. Runs scenarios Schemathesis cannot reach on its own, each validated against the
   document: the error contract (413, 401, 403, 404 for another namespace, 409
   `confirmation_pending` / `params_mismatch`, unknown fields); decisions with edited
   params, `remember` and refusals; the 429 rate limits per key and per session; and
   the Server-Sent Events variants (Schemathesis always sends `Accept: */*`, so it
   only sees the JSON variants): the message stream, the decision stream, the
   session event stream and reconnection with `Last-Event-ID` / `?after=`. Every
   event is validated against the document's `ServerSentEvent` and `*EventData`
   schemas and compared with the JSON event log.
4. Runs `schemathesis run` over every operation of the document (examples, coverage,
   fuzzing and stateful phases; positive and negative data; every check that makes
   sense, see CHECK_EXCLUSIONS), deterministic and bounded. This file is also loaded
   into Schemathesis as its hooks module (SCHEMATHESIS_HOOKS): it adds the
   `countersign_error_shape` check, the known-failure allow-list (KNOWN_FAILURES)
   and a key rotation that keeps the fuzzer under the per-key rate limit.
5. Stops the server and prints `N passed, M failed` as its last line: N/M count the
   document's operations (an operation fails when any check failed on any of its
   cases) plus the scenarios of step 3. Exit status 0 only when nothing failed.

Run it through scripts/fuzz.sh, which installs Schemathesis and cleans up.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
DOCUMENT = REPO / "Sources" / "CountersignServer" / "Resources" / "openapi.json"


# Requests are limited per key (600/min) and per session (60/min); the fuzzer spreads
# its requests over this many keys and real session ids.
FUZZ_KEYS = 8
IDLE_SESSIONS = 24

ERROR_CODES = {
    "validation_error": 400, "unauthenticated": 401, "forbidden": 403, "not_found": 404,
    "already_decided": 409, "params_mismatch": 409, "confirmation_pending": 409, "session_busy": 409,
    "expired": 410, "too_large": 413, "rate_limited": 429, "unavailable": 503, "internal": 500,
}

# Built-in Schemathesis checks that are switched off, and why. Everything else runs.
CHECK_EXCLUSIONS = {
    # The server answers every unsupported method (TRACE, PUT /v1/keys, …) with
    # 404 `not_found` in the documented error shape, by design (ErrorMiddleware
    # maps 405 to 404); this check insists on 405.
    "unsupported_method": "unsupported methods are 404 not_found by design",
    # Needs several identities per operation in the Schemathesis config; the role
    # matrix (member / approver / admin, 403 vs 404) is covered by the Swift tests.
    "object_level_authorization": "needs several auth contexts",
}

# Operations whose schema-valid requests may still be refused with 400 because the
# server checks something the schema cannot express (positive_data_acceptance gets
# 400 added to its expected statuses for them, and only for them):
SEMANTIC_400 = {
    "createSession": "agent must name a configured agent (only `demo` in this build)",
    "createNamespace": "namespace names are unique; an existing name is 400",
    "createKey": "expires_at must be in the future",
    "decideConfirmation": ("edited_params must match the tool's input schema; remember=session is refused "
                           "for destructive tools; grant_scope must cover the approved call, its regexes "
                           "must compile and a range's min must not exceed its max"),
    "decideBatch": "every item is checked like decideConfirmation before any is decided",
    "explainPolicy": ("agent and tool must name a configured agent and one of its tools; with session_id, "
                      "agent (if given) must be the session's agent"),
}

# ---------------------------------------------------------------------------------
# KNOWN FAILURES (allow-list)
#
# Each entry is a real server bug that the fuzzer found and that is reported to the
# owner of the Swift code; it is accepted here only so that the run stays green until
# it is fixed. Remove the entry together with the fix. A failure matches an entry when
# the operation label and the failure code (`st explain CODE`; ST901 is this file's
# countersign_error_shape check) are equal and `when(case, response)` is true.
# Dropped failures are still listed at the end of the run. Template:
#
#   {
#       "id": "short-name",
#       "operation": "POST /v1/sessions/{id}/messages",
#       "code": "ST101",  # server error
#       # Reproduction: curl -X POST … -d '{"content": …}' → 500 {"error": …}
#       "when": lambda case, response: "\u0000" in (case.body or {}).get("content", ""),
#   },
#
# None are known: fuzzing the current server found no 5xx and no response outside
# the documented shapes.
# ---------------------------------------------------------------------------------
KNOWN_FAILURES: list[dict] = [
]

# Failures that are not bugs: the fuzzer's expectation contradicts documented
# behaviour. Same matching as KNOWN_FAILURES; keep this list short and explained.
BY_DESIGN: list[dict] = [
    {
        "id": "last-event-id-wins",
        "operation": "GET /v1/sessions/{id}/events",
        "code": "ST201",  # schema-violating request accepted
        # SSE reconnection: a client reconnects to the same URL (query included) and adds
        # Last-Event-ID, which then is the cursor; `after` is not read at all, so an
        # out-of-range `after` next to a valid Last-Event-ID is not an error (documented
        # on the operation).
        "when": lambda case, response: bool(
            re.fullmatch(r"[0-9]{1,18}", str(_case_header(case, "Last-Event-ID")))),
    },
    {
        "id": "revoking-grants-keeps-the-list",
        "operation": "DELETE /v1/sessions/{id}/grants",
        "code": "ST301",  # deleted resource still available
        # This DELETE revokes grants (all of them, or those of `?tool=`); it does not
        # delete the session's grant list, which GET still answers with what is left
        # (documented on the operation). Only a 200 list read afterwards is dropped.
        "when": lambda case, response: response.status_code == 200
        and isinstance(json.loads(response.content).get("data"), list),
    },
]


# =================================================================================
# Schemathesis hooks (this file is loaded as SCHEMATHESIS_HOOKS by the run below)
# =================================================================================

def _register_hooks() -> None:
    import schemathesis

    keys = [key for key in os.environ.get("COUNTERSIGN_FUZZ_KEYS", "").split(",") if key]
    protected = tuple(key[:11] for key in keys) + tuple(
        prefix for prefix in os.environ.get("COUNTERSIGN_FUZZ_PROTECTED_PREFIXES", "").split(",") if prefix)
    dropped_log = os.environ.get("COUNTERSIGN_FUZZ_DROPPED_LOG", "")
    rotation = itertools.cycle(keys or [""])
    rotation_lock = threading.Lock()

    # The server limits each key to 600 requests a minute (429 beyond). The fuzzer sends
    # thousands, so it spreads them over several admin keys of the same actor, in turn.
    @schemathesis.auth(refresh_interval=None, retry_on=[])
    class RotatingKeys:
        def get(self, case, context):
            with rotation_lock:
                return next(rotation)

        def set(self, case, data, context):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"

    @schemathesis.check
    def countersign_error_shape(ctx, response, case):
        """Every response carries X-Request-Id; every 4xx/5xx body is the documented error shape (ST901)."""
        if not re.fullmatch(r"req_[0-9A-Za-z]{16}", _header(response.headers, "x-request-id")):
            raise AssertionError("Missing X-Request-Id\n\nThe response has no valid X-Request-Id header.")
        if response.status_code < 400:
            return None
        try:
            body = json.loads(response.content)
        except ValueError:
            content_type = _header(response.headers, "content-type")
            raise AssertionError(
                f"Error body is not JSON\n\n{response.status_code} with Content-Type {content_type!r}.") from None
        problem = error_shape_problem(body, response.status_code)
        if problem:
            raise AssertionError(f"Error body does not have the documented shape\n\n{problem}")
        return None

    @schemathesis.hook
    def before_call(context, case, kwargs):
        # Never let the fuzzer revoke the keys it fuzzes with (their prefixes are visible
        # in GET /v1/keys, and Schemathesis reuses values it saw in responses).
        if protected and case.operation.label == "DELETE /v1/keys/{prefix}":
            if str((case.path_parameters or {}).get("prefix", "")).startswith(protected):
                case.path_parameters["prefix"] = "sk_notakey0"

    @schemathesis.hook
    def filter_failure(context, failure, case, response):
        for kind, entries in (("known bug", KNOWN_FAILURES), ("by design", BY_DESIGN)):
            entry = match_entry(entries, failure, case, response)
            if entry is None:
                continue
            if dropped_log:
                with open(dropped_log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"kind": kind, "id": entry["id"], "operation": failure.operation,
                                             "code": getattr(failure, "code", ""), "title": failure.title}) + "\n")
            return False
        return True


def _header(headers, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else str(value)
    return ""


def error_shape_problem(body, status: int) -> str | None:
    """Why `body` is not `{"error": {"code", "message", "details"}}` with a code that fits `status`."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return f"top level must be exactly {{\"error\": …}}, got {json.dumps(body)[:300]}"
    error = body["error"]
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        return f"error must have exactly code, message, details; got {json.dumps(error)[:300]}"
    if error["code"] not in ERROR_CODES:
        return f"unknown error code {error['code']!r}"
    if ERROR_CODES[error["code"]] != status:
        return f"code {error['code']!r} belongs to HTTP {ERROR_CODES[error['code']]}, not {status}"
    if not isinstance(error["message"], str) or not error["message"]:
        return "message must be a non-empty string"
    if not isinstance(error["details"], dict):
        return "details must be an object"
    if status >= 500 and not re.fullmatch(r"req_[0-9A-Za-z]{16}", str(error["details"].get("request_id", ""))):
        return "a 5xx must carry details.request_id"
    return None


def _case_header(case, name: str) -> str:
    for key, value in (case.headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def match_entry(entries: list[dict], failure, case, response) -> dict | None:
    for entry in entries:
        if entry["operation"] != failure.operation:
            continue
        if entry["code"] != getattr(failure, "code", None):
            continue
        when = entry.get("when")
        try:
            if when is None or when(case, response):
                return entry
        except Exception:  # a predicate that cannot read this case does not match it
            continue
    return None


if __name__ != "__main__":
    _register_hooks()


# =================================================================================
# The harness
# =================================================================================

class Tally:
    def __init__(self) -> None:
        self.results: dict[str, list[str]] = {}

    def add(self, name: str, problem: str | None = None) -> None:
        self.results.setdefault(name, [])
        if problem:
            self.results[name].append(problem)

    @property
    def passed(self) -> int:
        return sum(1 for problems in self.results.values() if not problems)

    @property
    def failed(self) -> int:
        return sum(1 for problems in self.results.values() if problems)


def log(message: str) -> None:
    print(f"fuzz: {message}", flush=True)


class Server:
    """`countersign serve` on a free port with a fresh SQLite database."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self.admin_key = ""

    def start(self, timeout: float = 60.0) -> None:
        database = self.workdir / "fuzz.db"
        stdout_log = open(self.workdir / "server.stdout.log", "w", encoding="utf-8")
        stderr_log = open(self.workdir / "server.stderr.log", "w", encoding="utf-8")
        env = dict(os.environ, COUNTERSIGN_LOG_LEVEL=os.environ.get("COUNTERSIGN_LOG_LEVEL", "warning"))
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--port", "0", "--database", f"sqlite:{database}"],
            stdout=subprocess.PIPE, stderr=stderr_log, stdin=subprocess.DEVNULL, text=True, env=env,
            cwd=self.workdir)
        (self.workdir / "server.pid").write_text(str(self.process.pid))
        ready = threading.Event()

        def pump() -> None:
            assert self.process and self.process.stdout
            for line in self.process.stdout:
                stdout_log.write(line)
                stdout_log.flush()
                match = re.search(r"Countersign listening on (http://\S+)", line)
                if match and not ready.is_set():
                    self.base_url = match.group(1).rstrip("/")
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} before listening; see "
                                   f"{self.workdir / 'server.stderr.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not print its address within {timeout:.0f} s")
        key_file = Path(f"{database}.admin-key")
        self.admin_key = key_file.read_text().strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # Reaped: scripts/fuzz.sh must not signal this pid any more (it could be reused).
        (self.workdir / "server.pid").unlink(missing_ok=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Client:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key

    def call(self, method: str, path: str, body=None, headers: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def expect(self, status: int, method: str, path: str, body=None):
        got, payload = self.call(method, path, body)
        if got != status:
            raise RuntimeError(f"{method} {path} answered {got}, expected {status}: {json.dumps(payload)[:500]}")
        return payload

    def stream(self, method: str, path: str, body=None, headers: dict | None = None, *,
               stop=None, timeout: float = 30.0):
        """Reads an SSE response. Returns (status, content type, raw text, events).

        Stops when the server ends the stream, when `stop(events)` is true, or at `timeout`."""
        host, port = self.base_url.split("//", 1)[1].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        all_headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
        all_headers.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        raw = b""
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
                if not chunk:
                    break
                raw += chunk
                events = parse_sse(raw.decode("utf-8", errors="replace"))
                if stop is not None and stop(events):
                    break
        except TimeoutError:
            pass
        finally:
            connection.close()
        return response.status, response.getheader("Content-Type", ""), raw.decode("utf-8", "replace"), events


def parse_sse(text: str) -> list[dict]:
    """Complete events of an SSE stream: [{"id", "event", "data"}]; comments are skipped."""
    events = []
    blocks = re.split(r"\r\n\r\n|\n\n|\r\r", text)
    for block in blocks[:-1]:  # the last block may be incomplete
        event: dict = {}
        data_lines = []
        for line in re.split(r"\r\n|\n|\r", block):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data_lines.append(value)
            elif field in ("id", "event"):
                event[field] = value
        if data_lines:
            event["data"] = "\n".join(data_lines)
            events.append(event)
    return events


class DocumentSchemas:
    """Validators for the document's component schemas (jsonschema-rs, as Schemathesis uses)."""

    def __init__(self, document: dict) -> None:
        import jsonschema_rs

        self._module = jsonschema_rs
        self.components = document["components"]
        self._cache: dict[str, object] = {}

    def errors(self, name: str, instance) -> list[str]:
        validator = self._cache.get(name)
        if validator is None:
            validator = self._module.validator_for(
                {"components": self.components, "$ref": f"#/components/schemas/{name}"}, validate_formats=True)
            self._cache[name] = validator
        return [f"{'/'.join(map(str, error.instance_path)) or '(root)'}: {error.message}"
                for error in validator.iter_errors(instance)]

    @staticmethod
    def data_schema_name(event_type: str) -> str:
        return "".join(part.capitalize() for part in event_type.replace("_", ".").split(".")) + "EventData"


def check_sse_events(schemas: DocumentSchemas, events: list[dict], raw: str, log_events: dict[int, dict]) -> list[str]:
    """Problems with a stream: framing, schema of each event, agreement with the JSON log."""
    problems = []
    if not raw.startswith(": connected"):
        problems.append(f"the stream does not start with ': connected': {raw[:80]!r}")
    previous = None
    for event in events:
        problems += [f"event {event.get('id')}: {e}" for e in schemas.errors("ServerSentEvent", event)]
        try:
            data = json.loads(event.get("data", ""))
        except ValueError:
            problems.append(f"event {event.get('id')}: data is not one JSON document")
            continue
        if "\n" in event.get("data", ""):
            problems.append(f"event {event.get('id')}: data spans several lines")
        event_type = event.get("event", "")
        problems += [f"event {event.get('id')} ({event_type}) data: {e}"
                     for e in schemas.errors(DocumentSchemas.data_schema_name(event_type), data)
                     if event_type in EVENT_TYPES]
        seq = int(event["id"]) if str(event.get("id", "")).isdigit() else None
        if seq is None:
            continue
        if previous is not None and seq != previous + 1:
            problems.append(f"seq {seq} follows {previous}: events missing or repeated")
        previous = seq
        logged = log_events.get(seq)
        if logged is not None and (logged["type"] != event_type or logged["data"] != data):
            problems.append(f"event {seq} differs from the JSON log entry of the same seq")
    return problems


EVENT_TYPES = {"message.created", "run.started", "token", "message.completed", "tool_call.created",
               "confirmation.required", "confirmation.decided", "confirmation.expired", "tool.started",
               "tool.result", "run.completed", "run.failed"}


def json_log(client: Client, schemas: DocumentSchemas, session_id: str) -> tuple[dict[int, dict], list[str]]:
    page = client.expect(200, "GET", f"/v1/sessions/{session_id}/events?limit=1000")
    problems = [f"events page: {e}" for e in schemas.errors("EventPage", page)]
    return {event["seq"]: event for event in page["data"]}, problems


def sse_scenarios(client: Client, schemas: DocumentSchemas, tally: Tally) -> None:
    """The text/event-stream variants of the three streaming operations."""
    # 1. POST /v1/sessions/{id}/messages with Accept: text/event-stream: the run's
    #    events from the message on; the stream ends when the run pauses at the gate.
    name = "SSE POST /v1/sessions/{id}/messages"
    session = client.expect(201, "POST", "/v1/sessions", {"agent": "demo", "metadata": {"fuzz": "sse"}})
    sid = session["id"]
    status, ctype, raw, events = client.stream("POST", f"/v1/sessions/{sid}/messages",
                                               {"content": "write sse.txt streamed and read sse.txt"})
    log_events, problems = json_log(client, schemas, sid)
    if status != 200 or not ctype.startswith("text/event-stream"):
        problems.append(f"answered {status} {ctype!r}")
    problems += check_sse_events(schemas, events, raw, log_events)
    types = [event.get("event") for event in events]
    if not events or events[0].get("id") != "1":
        problems.append(f"the stream should start at seq 1, got ids {[e.get('id') for e in events][:5]}")
    if "confirmation.required" not in types:
        problems.append(f"no confirmation.required event in {types}")
    if events and int(events[-1]["id"]) != max(log_events):
        problems.append("the stream ended before the last event of the paused run")
    pending = [e for e in log_events.values() if e["type"] == "confirmation.required"]
    tally.add(name, "; ".join(problems) or None)

    # 2. POST /v1/confirmations/{id}/decision with Accept: text/event-stream: the
    #    continuation of the run until it completes.
    name = "SSE POST /v1/confirmations/{id}/decision"
    problems = []
    if not pending:
        problems.append("no pending confirmation to decide")
    else:
        before = max(log_events)
        status, ctype, raw, events = client.stream("POST", f"/v1/confirmations/{pending[0]['data']['id']}/decision",
                                                   {"decision": "approve"})
        log_events, problems = json_log(client, schemas, sid)
        if status != 200 or not ctype.startswith("text/event-stream"):
            problems.append(f"answered {status} {ctype!r}")
        problems += check_sse_events(schemas, events, raw, log_events)
        types = [event.get("event") for event in events]
        for wanted in ("confirmation.decided", "tool.started", "tool.result", "run.completed"):
            if wanted not in types:
                problems.append(f"no {wanted} event in {types}")
        if events and int(events[0]["id"]) != before + 1:
            problems.append(f"the continuation should start at seq {before + 1}, got {events[0].get('id')}")
        if types and types[-1] != "run.completed":
            problems.append(f"the stream should end with run.completed, ended with {types[-1]}")
    tally.add(name, "; ".join(problems) or None)

    # 3. GET /v1/sessions/{id}/events as SSE: the whole log, then it stays open.
    name = "SSE GET /v1/sessions/{id}/events"
    last = max(log_events)
    status, ctype, raw, events = client.stream(
        "GET", f"/v1/sessions/{sid}/events", stop=lambda evs: bool(evs) and evs[-1].get("id") == str(last),
        timeout=20)
    problems = []
    if status != 200 or not ctype.startswith("text/event-stream"):
        problems.append(f"answered {status} {ctype!r}")
    problems += check_sse_events(schemas, events, raw, log_events)
    if [int(e["id"]) for e in events] != sorted(log_events):
        problems.append(f"stream seqs {[e.get('id') for e in events]} != log seqs {sorted(log_events)}")
    tally.add(name, "; ".join(problems) or None)

    # 4. Reconnection: Last-Event-ID (and ?after=) give every later event, none twice;
    #    Last-Event-ID wins over ?after=.
    name = "SSE GET /v1/sessions/{id}/events resume"
    problems = []
    for headers, query, start in (({"Last-Event-ID": "3"}, "", 4), ({}, "?after=5", 6),
                                  ({"Last-Event-ID": "2"}, "?after=7", 3)):
        status, ctype, raw, events = client.stream(
            "GET", f"/v1/sessions/{sid}/events{query}", headers=headers,
            stop=lambda evs: bool(evs) and evs[-1].get("id") == str(last), timeout=20)
        problems += check_sse_events(schemas, events, raw, log_events)
        seqs = [int(e["id"]) for e in events]
        if seqs != list(range(start, last + 1)):
            problems.append(f"{headers or query}: got seqs {seqs}, expected {start}..{last}")
    status, payload = client.call("GET", f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "x",
                                                                               "Accept": "text/event-stream"})
    if status != 400 or error_shape_problem(payload, status):
        problems.append(f"Last-Event-ID: x answered {status} {json.dumps(payload)[:200]}")
    tally.add(name, "; ".join(problems) or None)


def documented_error_schema(document: dict, method: str, template: str, status: int) -> str | None:
    """The component schema name documented for `status` of an operation, if any."""
    operation = document["paths"].get(template, {}).get(method.lower(), {})
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return schema["$ref"].rsplit("/", 1)[1]


def error_contract(client: Client, schemas: DocumentSchemas, document: dict, seeds: dict, tally: Tally) -> None:
    """Errors the fuzzer cannot provoke on its own (it has one admin key and small bodies)."""
    member = client.expect(201, "POST", "/v1/keys", {"actor": "fuzz-member", "role": "member"})["key"]
    client.expect(201, "POST", "/v1/namespaces", {"name": "fuzz-other"})
    session, confirmation = seeds["sessions"][0], seeds["confirmations"][0]
    big = {"agent": "demo", "metadata": {"filler": "x" * (1 << 20)}}
    cases = [
        # (what, key, method, template, path, body, headers, status, code)
        ("body over 1 MiB", None, "POST", "/v1/sessions", "/v1/sessions", big, {}, 413, "too_large"),
        ("unknown key", "sk_" + "0" * 43, "GET", "/v1/sessions", "/v1/sessions", None, {}, 401,
         "unauthenticated"),
        ("another namespace", None, "GET", "/v1/sessions", "/v1/sessions", None, {"X-Namespace": "fuzz-other"},
         404, "not_found"),
        ("member on an admin route", member, "GET", "/v1/keys", "/v1/keys", None, {}, 403, "forbidden"),
        ("member on the audit log", member, "GET", "/v1/audit", "/v1/audit", None, {}, 403, "forbidden"),
        ("member on another actor's session", member, "GET", "/v1/sessions/{id}", f"/v1/sessions/{session}",
         None, {}, 403, "forbidden"),
        ("words never approve", None, "POST", "/v1/sessions/{id}/messages", f"/v1/sessions/{session}/messages",
         {"content": "yes"}, {}, 409, "confirmation_pending"),
        ("params_hash mismatch", None, "POST", "/v1/confirmations/{id}/decision",
         f"/v1/confirmations/{confirmation}/decision", {"decision": "approve", "params_hash": "0" * 64}, {}, 409,
         "params_mismatch"),
        ("unknown field", None, "POST", "/v1/confirmations/{id}/decision",
         f"/v1/confirmations/{confirmation}/decision", {"decision": "approve", "edited_parms": {}}, {}, 400,
         "validation_error"),
    ]
    for what, key, method, template, path, body, headers, status, code in cases:
        problems = []
        caller = client if key is None else Client(client.base_url, key)
        try:
            got, payload = caller.call(method, path, body, headers)
        except (OSError, http.client.HTTPException) as error:
            tally.add(f"errors: {what}", f"{method} {path}: {type(error).__name__}: {error}")
            continue
        if got != status or not isinstance(payload, dict) or (payload.get("error") or {}).get("code") != code:
            problems.append(f"expected {status} {code}, got {got} {json.dumps(payload)[:300]}")
        else:
            problems += [p for p in [error_shape_problem(payload, got)] if p]
            schema = documented_error_schema(document, method, template, got)
            if schema is None:
                problems.append(f"{got} is not documented for {method} {template}")
            else:
                problems += [f"{schema}: {e}" for e in schemas.errors(schema, payload)]
        if code == "confirmation_pending" and not problems:
            details = payload["error"]["details"]
            if details.get("plainAffirmativeAccepted") is not False or confirmation not in details.get(
                    "pending_confirmations", []):
                problems.append(f"details should list the pending ids and plainAffirmativeAccepted: false: {details}")
        tally.add(f"errors: {what}", "; ".join(problems) or None)


def rate_limits(client: Client, schemas: DocumentSchemas, tally: Tally) -> None:
    """429 `rate_limited` with Retry-After, per session and per key, in the documented shape."""
    name = "errors: rate limits (429)"
    problems: list[str] = []
    host, port = client.base_url.split("//", 1)[1].split(":")

    def hammer(key: str, path: str, limit: int):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for count in range(1, limit + 1):
                connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
                response = connection.getresponse()
                body = response.read()
                if response.status == 429:
                    return count, response.getheader("Retry-After"), json.loads(body)
                if response.status != 200:
                    return count, None, {"unexpected": response.status, "body": body.decode()[:200]}
        finally:
            connection.close()
        return limit, None, None

    session = client.expect(201, "POST", "/v1/sessions", {"agent": "demo"})["id"]
    member = client.expect(201, "POST", "/v1/keys", {"actor": "fuzz-limits", "role": "member"})["key"]
    member_session = Client(client.base_url, member).expect(201, "POST", "/v1/sessions", {"agent": "demo"})["id"]
    for what, key, path, budget in (("session", client.key, f"/v1/sessions/{session}", 60),
                                    ("key", member, f"/v1/sessions?limit=1", 600)):
        count, retry_after, payload = hammer(key, path, budget * 2)
        if payload is None or "unexpected" in payload:
            problems.append(f"per-{what} limit: no 429 within {count} requests ({payload})")
            continue
        if count <= budget // 2:
            problems.append(f"per-{what} limit: 429 after only {count} requests (budget {budget}/min)")
        problems += [f"per-{what} 429: {e}" for e in schemas.errors("RateLimitedError", payload)]
        problems += [p for p in [error_shape_problem(payload, 429)] if p]
        if not retry_after or str(payload["error"]["details"].get("retry_after")) != retry_after:
            problems.append(f"per-{what} 429: Retry-After {retry_after!r} vs details {payload['error']['details']}")
    # Another key and another session still have their own budgets.
    if Client(client.base_url, client.key).call("GET", f"/v1/sessions/{member_session}")[0] != 200:
        problems.append("a limited key or session blocked another one")
    tally.add(name, "; ".join(problems) or None)


def decision_flows(client: Client, schemas: DocumentSchemas, tally: Tally) -> None:
    """JSON decisions whose shapes random data rarely reaches: an edited approval, a grant, refusals."""
    name = "decisions: edit, remember, refusals"
    problems: list[str] = []
    session = client.expect(201, "POST", "/v1/sessions", {"agent": "demo"})["id"]
    outcome = client.expect(200, "POST", f"/v1/sessions/{session}/messages",
                            {"content": "write e.txt original and delete f.txt"})
    pending = {c["tool_name"]: c for c in outcome["pending_confirmations"]}
    write, delete = pending.get("write_file"), pending.get("delete_file")
    if not write or not delete:
        tally.add(name, f"expected write_file and delete_file confirmations, got {list(pending)}")
        return
    refusals = [
        (write["id"], {"decision": "approve", "edited_params": {"path": 7}}, "violations"),
        (delete["id"], {"decision": "approve", "remember": "session"}, None),
        (write["id"], {"decision": "deny", "edited_params": {"path": "x", "content": "y"}}, None),
    ]
    for cid, body, detail in refusals:
        status, payload = client.call("POST", f"/v1/confirmations/{cid}/decision", body)
        if status != 400 or error_shape_problem(payload, status):
            problems.append(f"{json.dumps(body)} answered {status} {json.dumps(payload)[:200]}")
        elif detail and detail not in payload["error"]["details"]:
            problems.append(f"{json.dumps(body)}: details lack {detail}: {payload['error']['details']}")
    edited = {"path": "e.txt", "content": "edited"}
    first = client.expect(200, "POST", f"/v1/confirmations/{write['id']}/decision",
                          {"decision": "approve", "edited_params": edited, "params_hash": write["params_hash"],
                           "remember": "session", "reason": "looks fine"})
    problems += [f"DecisionResult: {e}" for e in schemas.errors("DecisionResult", first)]
    decision = first["confirmation"].get("decision") or {}
    if first["run"] is not None:
        problems.append("the run resumed although delete_file is still pending")
    if decision.get("edited_params") != edited or decision.get("original_params") != write["params"]:
        problems.append(f"the decision does not record the edit: {decision}")
    second = client.expect(200, "POST", f"/v1/confirmations/{delete['id']}/decision", {"decision": "deny"})
    problems += [f"DecisionResult: {e}" for e in schemas.errors("DecisionResult", second)]
    run = second.get("run") or {}
    if run.get("status") != "completed" or "write_file" not in run.get("tools_used", []):
        problems.append(f"the run should complete having run write_file: {run}")
    again = client.expect(200, "POST", f"/v1/sessions/{session}/messages", {"content": "write g.txt granted"})
    if again["status"] != "completed" or again["pending_confirmations"]:
        problems.append(f"remember=session should let the next write_file run unasked: {again['status']}")
    cancelled = client.expect(200, "POST", f"/v1/sessions/{session}/cancel")
    problems += [f"CancelResult: {e}" for e in schemas.errors("CancelResult", cancelled)]
    tally.add(name, "; ".join(problems) or None)


def audit_chain(client: Client, schemas: DocumentSchemas, tally: Tally) -> None:
    """The audit hash chain still verifies, through GET /v1/audit/verify and recomputed here too."""
    problems: list[str] = []
    status, report = client.call("GET", "/v1/audit/verify")
    if status != 200:
        problems.append(f"GET /v1/audit/verify answered {status} {json.dumps(report)[:200]}")
    else:
        problems += [f"AuditVerification: {e}" for e in schemas.errors("AuditVerification", report)]
        if report.get("ok") is not True:
            problems.append(f"the chain does not verify: {report}")
    previous, after, entries = "0" * 64, 0, 0
    while True:
        page = client.expect(200, "GET", f"/v1/audit?after={after}&limit=1000")
        problems += [f"AuditPage: {e}" for e in schemas.errors("AuditPage", page)[:3]]
        for entry in page["data"]:
            if entry["prev_hash"] != previous:
                problems.append(f"audit entry {entry['id']}: prev_hash does not link to the entry before it")
                break
            previous, after, entries = entry["hash"], entry["id"], entries + 1
        if not page["has_more"] or problems:
            break
    if status == 200 and report.get("checked") != entries and not problems:
        problems.append(f"verify checked {report.get('checked')} entries, the log has {entries}")
    tally.add("audit chain verifies", "; ".join(problems) or None)


def seed_objects(client: Client, schemas: DocumentSchemas) -> dict:
    """Sessions, pending confirmations and a key that the fuzzer's path parameters point at."""
    sessions, confirmations = [], []
    messages = ["write a.txt hi",  # the one the brief names
                "write b1.txt x and write b2.txt y and delete b3.txt",  # parallel calls: 3 confirmations
                "append c1.txt one line and delete c2.txt and write c3.txt z",
                "delete d1.txt and append d2.txt more and write d3.txt w"]
    for index, content in enumerate(messages):
        session = client.expect(201, "POST", "/v1/sessions", {"agent": "demo", "metadata": {"seed": index}})
        sessions.append(session["id"])
        outcome = client.expect(200, "POST", f"/v1/sessions/{session['id']}/messages", {"content": content})
        problems = schemas.errors("RunOutcome", outcome)
        if problems or outcome["status"] != "awaiting_confirmation" or not outcome["pending_confirmations"]:
            raise RuntimeError(f"'{content}' did not leave a pending confirmation: {problems} {outcome}")
        confirmations += [c["id"] for c in outcome["pending_confirmations"]]
    # Idle sessions: requests on one session are limited to 60 a minute, so real ids are
    # spread over many.
    for index in range(IDLE_SESSIONS):
        idle = client.expect(201, "POST", "/v1/sessions", {"agent": "demo"})
        if index == 0:
            client.expect(200, "POST", f"/v1/sessions/{idle['id']}/messages", {"content": "list"})
        sessions.append(idle["id"])
    victim = client.expect(201, "POST", "/v1/keys", {"actor": "fuzz-victim", "role": "member"})
    namespace = client.expect(200, "GET", "/v1/namespaces")["data"][0]
    # The fuzzer's keys: admins acting as the bootstrap key's actor, so that they may
    # also decide the seeded confirmations (deciding needs the session's actor).
    fuzz_keys = [client.expect(201, "POST", "/v1/keys", {"actor": "admin", "role": "admin"})["key"]
                 for _ in range(FUZZ_KEYS)]
    return {"sessions": sessions, "confirmations": confirmations, "key_prefixes": [victim["prefix"]],
            "namespaces": [namespace["name"], namespace["id"]], "fuzz_keys": fuzz_keys}


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_config(path: Path, *, base_url: str, seeds: dict, max_examples: int, seed: int | None,
                 workers: int) -> None:
    def values(items):
        return "[" + ", ".join(toml_string(item) for item in items) + "]"

    semantic = values(sorted(SEMANTIC_400))
    lines = [
        "# Generated by Tests/fuzz/fuzz_api.py for one run.",
        f"base-url = {toml_string(base_url)}",
        # Without a seed, generation is derandomized: the same cases on every run.
        f"seed = {seed}" if seed is not None else "",
        f"workers = {workers}",
        "request-timeout = 20",
        "max-stream-events = 50",
        "",
        "[generation]",
        f"deterministic = {'false' if seed is not None else 'true'}",
        f"max-examples = {max_examples}",
        'mode = "all"',
        'database = "none"',
        "# Authorization comes from the key rotation in the hooks; ignored_auth covers its absence.",
        "with-security-parameters = false",
        "",
        "[checks.response_schema_conformance]",
        "validate-formats = true",
        "",
        "[phases.stateful]",
        "max-steps = 6",
        "",
        f"[dictionaries.sessions]\nvalues = {values(seeds['sessions'])}",
        f"[dictionaries.confirmations]\nvalues = {values(seeds['confirmations'])}",
        f"[dictionaries.key_prefixes]\nvalues = {values(seeds['key_prefixes'])}",
        f"[dictionaries.namespaces]\nvalues = {values(seeds['namespaces'])}",
        "",
        "# X-Namespace mostly names the key's own namespace (anything else is a plain 404).",
        "[parameters]",
        '"header.X-Namespace" = { dictionary = "namespaces", probability = 0.7 }',
        "",
        "# Half of the generated ids are real ones, so bodies are also fuzzed against live objects.",
        "[[operations]]",
        'include-path-regex = "^/v1/sessions/\\\\{id\\\\}"',
        '[operations.parameters]\n"path.id" = { dictionary = "sessions", probability = 0.5 }',
        "",
        "[[operations]]",
        'include-path-regex = "^/v1/confirmations/\\\\{id\\\\}"',
        '[operations.parameters]\n"path.id" = { dictionary = "confirmations", probability = 0.5 }',
        "",
        "[[operations]]",
        'include-operation-id = "revokeKey"',
        '[operations.parameters]\n"path.prefix" = { dictionary = "key_prefixes", probability = 0.3 }',
        "",
        "# Schema-valid requests these operations may refuse with 400 (see SEMANTIC_400 in fuzz_api.py).",
        "[[operations]]",
        f"include-operation-id = {semantic}",
        "[operations.checks.positive_data_acceptance]",
        'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410"]',
        "",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_schemathesis(args, workdir: Path, server: Server, seeds: dict, document_path: Path) -> tuple[int, Path]:
    config = workdir / "schemathesis.toml"
    write_config(config, base_url=server.base_url, seeds=seeds, max_examples=args.max_examples, seed=args.seed,
                 workers=args.workers)
    reports = workdir / "reports"
    ndjson = reports / "events.ndjson"
    env = dict(os.environ)
    env.update({
        "SCHEMATHESIS_HOOKS": str(HERE),
        "COUNTERSIGN_FUZZ_KEYS": ",".join(seeds["fuzz_keys"]),
        "COUNTERSIGN_FUZZ_PROTECTED_PREFIXES": server.admin_key[:11],
        "COUNTERSIGN_FUZZ_DROPPED_LOG": str(workdir / "dropped.jsonl"),
        "PYTHONHASHSEED": "0",
    })
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", str(document_path),
        "--checks", "all",
        "--exclude-checks", ",".join(sorted(CHECK_EXCLUSIONS)),
        "--max-response-time", "10",
        "--report", "ndjson,junit", "--report-dir", str(reports),
        "--report-ndjson-path", str(ndjson), "--report-junit-path", str(reports / "junit.xml"),
    ]
    log("running " + " ".join(command[2:]))
    completed = subprocess.run(command, env=env, cwd=workdir, timeout=args.fuzz_timeout)
    return completed.returncode, ndjson


def collect_failures(ndjson: Path) -> tuple[dict[str, list[str]], list[str], bool]:
    """(failures by operation label, errors, whether the engine finished) from the NDJSON report."""
    failures: dict[str, list[str]] = {}
    errors: list[str] = []
    finished = False
    if not ndjson.exists():
        return failures, ["no NDJSON report was written"], False
    with ndjson.open(encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            kind, payload = next(iter(event.items()))
            if kind == "EngineFinished":
                finished = True
            elif kind in ("NonFatalError", "FatalError"):
                info = payload.get("info") or {}
                label = payload.get("label") or "(run)"
                errors.append(f"{label}: {info.get('title') or payload}"[:400])
            elif kind == "ScenarioFinished":
                recorder = payload.get("recorder") or {}
                for checks in (recorder.get("checks") or {}).values():
                    for check in checks:
                        if check.get("status") != "failure":
                            continue
                        failure = (check.get("failure_info") or {}).get("failure") or {}
                        label = failure.get("operation") or recorder.get("label") or "(run)"
                        text = f"{failure.get('code', '')} {failure.get('title', check.get('name'))}".strip()
                        failures.setdefault(label, [])
                        if text not in failures[label]:
                            failures[label].append(text)
    return failures, errors, finished


def document_operations(document: dict) -> list[str]:
    methods = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
            if method in methods]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.environ.get("COUNTERSIGN_BIN", ".build/debug/countersign"),
                        help="the countersign executable (env COUNTERSIGN_BIN)")
    parser.add_argument("--document", default=str(DOCUMENT), help="the OpenAPI document to fuzz from")
    parser.add_argument("--tmp", help="working folder (default: a new temporary one, removed afterwards)")
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "100")),
                        help="test cases per operation and phase (env FUZZ_MAX_EXAMPLES)")
    parser.add_argument("--seed", type=int, default=int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED")
                        else None, help=("explore: random generation from this seed (env FUZZ_SEED); by default "
                                         "generation is deterministic, the same cases on every run"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("FUZZ_WORKERS", "1")))
    parser.add_argument("--fuzz-timeout", type=float, default=600, help="hard limit for the Schemathesis run (s)")
    args = parser.parse_args()

    started = time.monotonic()
    binary = Path(args.bin)
    if not binary.is_absolute():
        binary = (REPO / binary) if (REPO / binary).exists() else binary.resolve()
    document_path = Path(args.document).resolve()
    document = json.loads(document_path.read_text(encoding="utf-8"))
    operations = document_operations(document)
    schemas = DocumentSchemas(document)

    own_tmp = args.tmp is None
    workdir = Path(tempfile.mkdtemp(prefix="countersign-fuzz-")) if own_tmp else Path(args.tmp)
    workdir.mkdir(parents=True, exist_ok=True)
    server = Server(binary, workdir)
    tally = Tally()
    interrupted = 0

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not binary.exists():
            raise RuntimeError(f"no server binary at {binary}: run `swift build` first (or set COUNTERSIGN_BIN)")
        server.start()
        log(f"server {binary} listening on {server.base_url}; working folder {workdir}")
        client = Client(server.base_url, server.admin_key)

        served = json.loads(urllib.request.urlopen(server.base_url + "/openapi.json", timeout=10).read())
        if served != document:
            log("warning: GET /openapi.json differs from the fuzzed document (the binary may predate "
                f"{document_path.name}); fuzzing from {document_path.name}")

        seeds = seed_objects(client, schemas)
        log(f"seeded {len(seeds['sessions'])} sessions, {len(seeds['confirmations'])} pending confirmations")
        error_contract(client, schemas, document, seeds, tally)
        decision_flows(client, schemas, tally)
        rate_limits(client, schemas, tally)
        sse_scenarios(client, schemas, tally)

        code, ndjson = run_schemathesis(args, workdir, server, seeds, document_path)
        audit_chain(client, schemas, tally)  # after thousands of fuzzed writes
        failures, errors, finished = collect_failures(ndjson)
        for operation in operations:
            tally.add(operation, "; ".join(failures.pop(operation, [])) or None)
        for label, problems in failures.items():  # failures outside the document's operations
            tally.add(label, "; ".join(problems))
        if errors:
            tally.add("schemathesis errors", "; ".join(errors))
        if not finished:
            tally.add("schemathesis run", f"the run did not finish (exit {code})")
        elif code != 0 and tally.failed == 0:
            tally.add("schemathesis run", f"schemathesis exited with {code} without a recorded failure")
        if not server.alive():
            tally.add("server", f"the server died during the run (exit {server.process.returncode})")
    except Exception as error:  # setup problems count as a failure, with the reason
        tally.add("harness", f"{type(error).__name__}: {error}")
    except (SystemExit, KeyboardInterrupt) as interruption:
        tally.add("harness", f"interrupted ({interruption!r})")
        interrupted = 130 if isinstance(interruption, KeyboardInterrupt) else int(interruption.code or 1)
    finally:
        server.stop()

    dropped_path = workdir / "dropped.jsonl"
    if dropped_path.exists():
        dropped = sorted({line.strip() for line in dropped_path.read_text().splitlines() if line.strip()})
        log(f"{len(dropped)} failure(s) dropped by the KNOWN_FAILURES / BY_DESIGN lists:")
        for line in dropped:
            log("  " + line)
    failed = {name: problems for name, problems in tally.results.items() if problems}
    if failed:
        log("FAILED:")
        for name, problems in failed.items():
            for problem in problems:
                log(f"  {name}: {problem}")
        log(f"reports and server logs kept in {workdir}")
    else:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"took {time.monotonic() - started:.1f} s")
    print(f"{tally.passed} passed, {tally.failed} failed", flush=True)
    if interrupted:
        return interrupted
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
