import GateCore
import Testing

private let readTool = ToolFlags(effect: .read)
private let writeTool = ToolFlags(effect: .write, idempotent: true)
private let destructiveTool = ToolFlags(effect: .destructive)

private func evaluate(
    _ toolName: String, _ flags: ToolFlags, params: JSONValue = [:], policy: AgentPolicy = AgentPolicy(),
    tainted: Bool = false, granted: Bool = false
) -> GateDecision {
    PolicyEvaluator.evaluate(
        toolName: toolName, flags: flags, params: params, policy: policy, tainted: tainted, granted: granted)
}

@Suite("PolicyEvaluator")
struct PolicyEvaluatorTests {
    // MARK: Defaults and per-tool overrides

    @Test(
        "Defaults per effect: read → auto, write → confirm, destructive → confirm",
        arguments: [
            (ToolEffect.read, ToolPolicy.auto, GateDecision.run(.policy)),
            (.write, .confirm, .confirm(.always, ruleID: nil)),
            (.destructive, .confirm, .confirm(.always, ruleID: nil)),
        ])
    func defaults(effect: ToolEffect, policy: ToolPolicy, decision: GateDecision) {
        #expect(ToolPolicy.default(for: effect) == policy)
        #expect(evaluate("some_tool", ToolFlags(effect: effect)) == decision)
    }

    @Test("Open-world and idempotent flags do not change the default")
    func flagsOtherThanEffect() {
        #expect(evaluate("http_fetch", ToolFlags(effect: .read, openWorld: true)) == .run(.policy))
        #expect(
            evaluate("write_file", ToolFlags(effect: .write, openWorld: true, idempotent: true))
                == .confirm(.always, ruleID: nil))
    }

    @Test("Per-tool policies override the effect default, for that tool only")
    func perToolOverrides() {
        let policy = AgentPolicy(tools: [
            "write_file": .auto, "read_file": .confirm, "delete_file": .deny, "http_fetch": .confirmIfTainted,
        ])
        #expect(evaluate("write_file", writeTool, policy: policy) == .run(.policy))
        #expect(evaluate("read_file", readTool, policy: policy) == .confirm(.always, ruleID: nil))
        #expect(evaluate("delete_file", destructiveTool, policy: policy) == .deny(ruleID: nil))
        #expect(evaluate("http_fetch", readTool, policy: policy) == .run(.policy))
        #expect(evaluate("http_fetch", readTool, policy: policy, tainted: true) == .confirm(.tainted, ruleID: nil))
        // Tools without an override keep their defaults.
        #expect(evaluate("append_file", writeTool, policy: policy) == .confirm(.always, ruleID: nil))
        #expect(evaluate("list_files", readTool, policy: policy) == .run(.policy))
        // Overrides are exact names, not globs or prefixes.
        #expect(evaluate("write_file2", writeTool, policy: policy) == .confirm(.always, ruleID: nil))
    }

    // MARK: Rules

    @Test("Rules come before per-tool policies, and the first matching rule wins")
    func firstMatchingRuleWins() {
        let policy = AgentPolicy(
            tools: ["write_file": .deny],
            rules: [
                PolicyRule(id: "drafts-auto", tool: "write_file", when: ["path": .prefix("drafts/")], policy: .auto),
                PolicyRule(id: "md-confirm", tool: "write_file", when: ["path": .glob("*.md")], policy: .confirm),
                PolicyRule(id: "any-write", tool: "write_file", policy: .deny),
            ])
        // Matches the first and the second rule: the first wins.
        #expect(evaluate("write_file", writeTool, params: ["path": "drafts/a.md"], policy: policy) == .run(.policy))
        // Matches the second and third: the second wins, and the rule is reported.
        #expect(
            evaluate("write_file", writeTool, params: ["path": "notes/a.md"], policy: policy)
                == .confirm(.rule, ruleID: "md-confirm"))
        // Only the catch-all rule matches.
        #expect(
            evaluate("write_file", writeTool, params: ["path": "notes/a.txt"], policy: policy)
                == .deny(ruleID: "any-write"))
    }

    @Test("Without a matching rule, the per-tool policy and then the default apply, with no rule id")
    func fallsThroughRules() {
        let policy = AgentPolicy(
            tools: ["write_file": .confirmIfTainted],
            rules: [PolicyRule(id: "r1", tool: "write_file", when: ["path": .prefix("tmp/")], policy: .auto)])
        #expect(evaluate("write_file", writeTool, params: ["path": "src/a"], policy: policy) == .run(.policy))
        #expect(
            evaluate("write_file", writeTool, params: ["path": "src/a"], policy: policy, tainted: true)
                == .confirm(.tainted, ruleID: nil))
        #expect(
            evaluate("delete_file", destructiveTool, params: ["path": "tmp/a"], policy: policy)
                == .confirm(.always, ruleID: nil))
    }

    @Test("A rule can make a read tool confirm and report itself")
    func ruleTightensReadTool() {
        let policy = AgentPolicy(rules: [
            PolicyRule(id: "secrets", tool: "read_file", when: ["path": .glob("*.env")], policy: .confirm)
        ])
        #expect(
            evaluate("read_file", readTool, params: ["path": "app/.env"], policy: policy)
                == .confirm(.rule, ruleID: "secrets"))
        #expect(evaluate("read_file", readTool, params: ["path": "app/main.swift"], policy: policy) == .run(.policy))
    }

    @Test("A rule's tool may be a glob")
    func ruleToolGlob() {
        let policy = AgentPolicy(rules: [PolicyRule(id: "git", tool: "git.*", policy: .deny)])
        #expect(evaluate("git.push", writeTool, policy: policy) == .deny(ruleID: "git"))
        #expect(evaluate("git.status", readTool, policy: policy) == .deny(ruleID: "git"))
        #expect(evaluate("gitlab.push", writeTool, policy: policy) == .confirm(.always, ruleID: nil))
        #expect(evaluate("git", readTool, policy: policy) == .run(.policy))
    }

    @Test("All conditions of a rule must match; a missing argument does not match")
    func allConditionsMustMatch() {
        let rule = PolicyRule(
            id: "small-drafts", tool: "write_file",
            when: ["path": .prefix("drafts/"), "size": .range(min: nil, max: 1000)], policy: .auto)
        #expect(rule.matches(toolName: "write_file", params: ["path": "drafts/a", "size": 10]))
        #expect(!rule.matches(toolName: "write_file", params: ["path": "drafts/a", "size": 5000]))
        #expect(!rule.matches(toolName: "write_file", params: ["path": "final/a", "size": 10]))
        #expect(!rule.matches(toolName: "write_file", params: ["path": "drafts/a"]))
        #expect(!rule.matches(toolName: "append_file", params: ["path": "drafts/a", "size": 10]))
        #expect(!rule.matches(toolName: "write_file", params: "drafts/a"))
    }

    @Test("A rule without conditions matches every call of its tool")
    func ruleWithoutConditions() {
        let rule = PolicyRule(id: "all", tool: "write_file", policy: .confirm)
        #expect(rule.matches(toolName: "write_file", params: [:]))
        #expect(rule.matches(toolName: "write_file", params: ["anything": [1, 2]]))
        #expect(!rule.matches(toolName: "read_file", params: [:]))
    }

    // MARK: Matchers

    @Test(
        "prefix matches strings that start with it",
        arguments: [
            (JSONValue.string("drafts/a.md"), true), (.string("drafts/"), true), (.string("drafts"), false),
            (.string("Drafts/a"), false), (.string("x/drafts/a"), false), (.int(1), false), (.null, false),
            (.array(["drafts/a"]), false),
        ])
    func prefixMatcher(value: JSONValue, matches: Bool) {
        #expect(ValueMatcher.prefix("drafts/").matches(value) == matches)
    }

    @Test(
        "glob matches whole strings",
        arguments: [
            (JSONValue.string("notes/today.md"), true), (.string("a.md"), true), (.string(".md"), true),
            (.string("a.md.bak"), false), (.string("a.MD"), false), (.int(5), false), (.bool(true), false),
        ])
    func globMatcher(value: JSONValue, matches: Bool) {
        #expect(ValueMatcher.glob("*.md").matches(value) == matches)
    }

    @Test(
        "equals compares JSON values, an integer equal to the same double",
        arguments: [
            (JSONValue.string("main"), JSONValue.string("main"), true),
            (.string("main"), .string("Main"), false),
            (.int(1), .double(1.0), true),
            (.double(1.5), .double(1.5), true),
            (.int(1), .string("1"), false),
            (.int(1), .bool(true), false),
            (.null, .null, true),
            (.object(["a": 1, "b": [true]]), .object(["b": [true], "a": 1.0]), true),
            (.object(["a": 1]), .object(["a": 1, "b": 2]), false),
            (.array([1, 2]), .array([2, 1]), false),
        ])
    func equalsMatcher(expected: JSONValue, actual: JSONValue, matches: Bool) {
        #expect(ValueMatcher.equals(expected).matches(actual) == matches)
    }

    @Test(
        "range is inclusive at both ends and needs a number",
        arguments: [
            (JSONValue.int(0), false), (.double(0.999), false), (.int(1), true), (.double(5.5), true),
            (.int(10), true), (.double(10.001), false), (.int(11), false), (.string("5"), false), (.null, false),
        ])
    func rangeMatcher(value: JSONValue, matches: Bool) {
        #expect(ValueMatcher.range(min: 1, max: 10).matches(value) == matches)
    }

    @Test("range with one open end")
    func halfOpenRanges() {
        #expect(ValueMatcher.range(min: 0, max: nil).matches(.int(Int64.max)))
        #expect(!ValueMatcher.range(min: 0, max: nil).matches(.double(-0.5)))
        #expect(ValueMatcher.range(min: nil, max: 0).matches(.int(-1_000_000)))
        #expect(!ValueMatcher.range(min: nil, max: 0).matches(.double(0.5)))
        #expect(ValueMatcher.range(min: nil, max: nil).matches(.int(3)))
        #expect(!ValueMatcher.range(min: nil, max: nil).matches(.string("3")))
    }

    @Test("No matcher matches a missing argument")
    func missingArgument() {
        #expect(!ValueMatcher.equals(.null).matches(nil))
        #expect(!ValueMatcher.prefix("").matches(nil))
        #expect(!ValueMatcher.glob("*").matches(nil))
        #expect(!ValueMatcher.range(min: nil, max: nil).matches(nil))
    }

    // MARK: Taint and grants

    @Test(
        "confirm_if_tainted runs when clean and confirms as `tainted` once tainted",
        arguments: [false, true])
    func confirmIfTainted(viaRule: Bool) {
        let policy =
            viaRule
            ? AgentPolicy(rules: [PolicyRule(id: "t", tool: "send_mail", policy: .confirmIfTainted)])
            : AgentPolicy(tools: ["send_mail": .confirmIfTainted])
        let ruleID = viaRule ? "t" : nil
        #expect(evaluate("send_mail", writeTool, policy: policy, tainted: false) == .run(.policy))
        #expect(evaluate("send_mail", writeTool, policy: policy, tainted: true) == .confirm(.tainted, ruleID: ruleID))
        #expect(evaluate("send_mail", writeTool, policy: policy, tainted: true, granted: true) == .run(.grant))
        #expect(evaluate("send_mail", writeTool, policy: policy, tainted: false, granted: true) == .run(.policy))
    }

    @Test("Taint does not change auto, confirm or deny")
    func taintOnlyAffectsConfirmIfTainted() {
        let policy = AgentPolicy(tools: ["a": .auto, "c": .confirm, "d": .deny])
        for tainted in [false, true] {
            #expect(evaluate("a", writeTool, policy: policy, tainted: tainted) == .run(.policy))
            #expect(evaluate("c", readTool, policy: policy, tainted: tainted) == .confirm(.always, ruleID: nil))
            #expect(evaluate("d", readTool, policy: policy, tainted: tainted) == .deny(ruleID: nil))
        }
    }

    @Test("A grant turns confirm into run(.grant), but never lifts a deny")
    func grants() {
        let policy = AgentPolicy(
            tools: ["blocked": .deny],
            rules: [
                PolicyRule(id: "confirm-rule", tool: "ruled", policy: .confirm),
                PolicyRule(id: "deny-rule", tool: "forbidden", policy: .deny),
            ])
        #expect(evaluate("write_file", writeTool, policy: policy, granted: true) == .run(.grant))
        #expect(evaluate("delete_file", destructiveTool, policy: policy, granted: true) == .run(.grant))
        #expect(evaluate("ruled", writeTool, policy: policy, granted: true) == .run(.grant))
        #expect(evaluate("blocked", writeTool, policy: policy, granted: true) == .deny(ruleID: nil))
        #expect(evaluate("forbidden", writeTool, policy: policy, granted: true) == .deny(ruleID: "deny-rule"))
        #expect(evaluate("read_file", readTool, policy: policy, granted: true) == .run(.policy))
    }

    // MARK: Grant permission

    @Test("allowsGrant: destructive tools only when listed; grantsForbidden always wins")
    func allowsGrant() {
        let policy = AgentPolicy(
            destructiveGrantsAllowed: ["delete_draft", "purge_cache"], grantsForbidden: ["send_invoice", "purge_cache"])
        #expect(policy.allowsGrant(toolName: "write_file", flags: writeTool))
        #expect(policy.allowsGrant(toolName: "read_file", flags: readTool))
        #expect(!policy.allowsGrant(toolName: "delete_file", flags: destructiveTool))
        #expect(policy.allowsGrant(toolName: "delete_draft", flags: destructiveTool))
        #expect(!policy.allowsGrant(toolName: "send_invoice", flags: writeTool))
        #expect(!policy.allowsGrant(toolName: "purge_cache", flags: destructiveTool))
        // The destructive allow-list is by exact name and belongs to one agent policy.
        #expect(!policy.allowsGrant(toolName: "delete_draft2", flags: destructiveTool))
        #expect(!AgentPolicy().allowsGrant(toolName: "delete_draft", flags: destructiveTool))
    }
}

@Suite struct ValueMatcherTests {
    @Test(
        "regex must match the whole string value",
        arguments: [
            ("drafts/.*", "drafts/a.txt", true),
            ("drafts/.*", "../drafts/a.txt", false),
            ("drafts/.*", "drafts/a.txt\n", false),
            ("KY[0-9]+", "KY42", true),
            ("KY[0-9]+", "DEKY42", false),
            ("a|b", "a", true),
            ("a|b", "ab", false),
            (".*\\.env", "config/prod.env", true),
        ])
    func regexMatchesWholeValue(pattern: String, value: String, matches: Bool) {
        #expect(ValueMatcher.regex(pattern).matches(.string(value)) == matches)
    }

    @Test("regex never matches non-strings or a missing argument")
    func regexNeedsAString() {
        #expect(!ValueMatcher.regex("4.*").matches(42))
        #expect(!ValueMatcher.regex(".*").matches(nil))
    }

    @Test(
        "every matcher round-trips through its JSON shape",
        arguments: [
            ValueMatcher.equals(["a": 1]), .equals("x"), .prefix("notes/"), .glob("*.md"), .regex("[a-z]+"),
            .range(min: 1, max: nil), .range(min: nil, max: 9.5), .range(min: -1, max: 1),
        ])
    func roundTrip(matcher: ValueMatcher) throws {
        #expect(try ValueMatcher.parse(matcher.json) == matcher)
    }

    @Test(
        "bad matchers are refused with a message",
        arguments: [
            (#"{"regex": "("}"#, "not a valid regular expression"),
            (#"{"prefix": 3}"#, "prefix must be a string"),
            (#"{"min": 5, "max": 1}"#, "greater than max"),
            (#"{"min": "5"}"#, "min must be a number"),
            (#"{"prefix": "a", "glob": "b"}"#, "one matcher per argument"),
            (#"{"prefx": "a"}"#, "unknown matcher 'prefx'"),
            ("{}", "expected a matcher"),
        ])
    func badMatchers(json: String, message: String) throws {
        let value = try JSONValue.parse(json)
        #expect {
            try ValueMatcher.parse(value)
        } throws: { error in
            (error as? MatcherError)?.message.contains(message) == true
        }
    }

    @Test("a plain value means equals; parseAll names the argument")
    func plainValuesAndArgumentNames() throws {
        #expect(try ValueMatcher.parse(42) == .equals(42))
        #expect(try ValueMatcher.parseAll(["path": ["prefix": "a/"]]) == ["path": .prefix("a/")])
        #expect {
            try ValueMatcher.parseAll(["path": ["regex": "("]])
        } throws: { error in
            (error as? MatcherError)?.message.hasPrefix("path: ") == true
        }
    }
}

@Suite struct PolicyExplanationTests {
    @Test("explain names the source, the rule and the reason")
    func sources() {
        let policy = AgentPolicy(
            tools: ["append_file": .confirmIfTainted],
            rules: [PolicyRule(id: "drafts", tool: "write_file", when: ["path": .prefix("drafts/")], policy: .auto)])
        let rule = PolicyEvaluator.explain(
            toolName: "write_file", flags: ToolFlags(effect: .write), params: ["path": "drafts/a"], policy: policy,
            tainted: false, granted: false)
        #expect(rule.source == .rule && rule.ruleID == "drafts" && rule.decision == .run(.policy))
        #expect(rule.reason.contains("Rule drafts"))
        let byDefault = PolicyEvaluator.explain(
            toolName: "write_file", flags: ToolFlags(effect: .write), params: ["path": "x"], policy: policy,
            tainted: false, granted: false)
        #expect(byDefault.source == .default && byDefault.policy == .confirm)
        #expect(byDefault.decision == .confirm(.always, ruleID: nil))
        let tainted = PolicyEvaluator.explain(
            toolName: "append_file", flags: ToolFlags(effect: .write), params: [:], policy: policy, tainted: true,
            granted: false)
        #expect(tainted.source == .tool && tainted.decision == .confirm(.tainted, ruleID: nil))
        #expect(tainted.reason.contains("tainted"))
        let granted = PolicyEvaluator.explain(
            toolName: "append_file", flags: ToolFlags(effect: .write), params: [:], policy: policy, tainted: true,
            granted: true)
        #expect(granted.decision == .run(.grant))
    }
}
