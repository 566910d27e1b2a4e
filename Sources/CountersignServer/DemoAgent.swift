import AgentRuntime
import ModelProviders
import ToolSources

/// The built-in `demo` agent of SPEC §9: the offline scripted model with the workspace
/// file tools and `http_fetch`. Needs no configuration and no network.
public enum DemoAgent {
    public static func make() -> Agent {
        Agent(
            name: "demo",
            instructions: "You are the Countersign demo agent. You keep files in the session workspace.",
            model: DemoModel(), tools: WorkspaceFiles.tools + [HTTPFetchTool()])
    }
}
