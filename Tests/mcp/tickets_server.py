"""A small MCP server for Countersign's tests: a ticket list in memory.

    python3 tickets_server.py stdio
    python3 tickets_server.py http HOST PORT     (PORT 0: pick a free one)

Over HTTP (Streamable HTTP, answers as `text/event-stream`) the script prints
`PORT <n>` on stdout once it listens, then serves until it is killed.

Tools: `list_tickets` (read-only), `create_ticket` (writes, not destructive, not
idempotent; it keeps the `countersign/confirmation_id` of the call's `_meta`, which
`list_tickets` shows) and `enable_reports`, which registers a new tool,
`ticket_report`, and tells the client with `notifications/tools/list_changed`.
"""

import socket
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("tickets")
tickets: list[tuple[str, str | None]] = []


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
def list_tickets() -> str:
    """List the open tickets, one per line."""
    lines = [f"#{n}: {title}" + (f" ({confirmation})" if confirmation else "")
             for n, (title, confirmation) in enumerate(tickets, start=1)]
    return "\n".join(lines) or "no tickets"


@server.tool(
    annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
)
def create_ticket(title: str, ctx: Context) -> str:
    """Open a ticket with the given title."""
    meta = ctx.request_context.meta or {}
    tickets.append((title, meta.get("countersign/confirmation_id")))
    return f"created ticket #{len(tickets)}: {title}"


def ticket_report() -> str:
    """Count the open tickets."""
    return f"{len(tickets)} open tickets"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True))
async def enable_reports(ctx: Context) -> str:
    """Add the ticket_report tool."""
    server.add_tool(ticket_report, annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    await ctx.session.send_tool_list_changed()
    return "reports enabled"


async def serve_http(host: str, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, log_level="warning")
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "http":
        anyio.run(serve_http, sys.argv[2], int(sys.argv[3]))
    else:
        server.run("stdio")
