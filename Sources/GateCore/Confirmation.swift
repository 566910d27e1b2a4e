import Foundation

/// Where a gated tool call stands (SPEC §2).
///
/// ```
/// pending ──approve──▶ approved ──claim──▶ executing ──▶ succeeded | failed
///    │                                         └─(crash)─▶ interrupted
///    ├──deny────▶ denied
///    ├──expire──▶ expired
///    └──cancel──▶ cancelled
/// ```
public enum ConfirmationStatus: String, Sendable, Codable, CaseIterable {
    case pending, approved, executing, succeeded, failed, interrupted, denied, expired, cancelled

    /// No further transition is possible, except re-running an interrupted idempotent call.
    public var isSettled: Bool {
        switch self {
        case .succeeded, .failed, .denied, .expired, .cancelled: true
        case .pending, .approved, .executing, .interrupted: false
        }
    }
}

/// Why a confirmation was asked for.
public enum ConfirmationPolicy: String, Sendable, Codable, CaseIterable {
    case always, tainted, rule
}

public enum DecisionKind: String, Sendable, Codable, CaseIterable {
    case approve, deny
}

/// `remember: session` turns an approval into a grant for later calls of the same tool.
public enum Remember: String, Sendable, Codable, CaseIterable {
    case once, session
}

/// What a person asked for, before the store has checked it against the row.
public struct DecisionRequest: Sendable, Equatable {
    public var kind: DecisionKind
    public var reason: String?
    public var editedParams: JSONValue?
    public var paramsHash: String?
    public var remember: Remember
    /// With `remember: session`: the grant covers only later calls whose arguments match
    /// these matchers (each must match the approved call's own arguments).
    public var grantScope: [String: ValueMatcher]? = nil
    /// The lookup prefix of the API key the decision came with, for the audit log.
    public var keyPrefix: String? = nil

    public init(
        kind: DecisionKind, reason: String? = nil, editedParams: JSONValue? = nil,
        paramsHash: String? = nil, remember: Remember = .once
    ) {
        self.kind = kind
        self.reason = reason
        self.editedParams = editedParams
        self.paramsHash = paramsHash
        self.remember = remember
    }

    public static let defaultDenyReason = "User rejected the action."

    /// The reason given to the model for a denial: the person's, or the default when
    /// none (or only blanks) was given.
    public var denyReason: String {
        guard let reason, !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            return Self.defaultDenyReason
        }
        return reason
    }
}

/// What the gate receives. The store feeds these to ``ConfirmationMachine`` inside the
/// transaction that holds the row, and writes only what the machine returns.
public enum ConfirmationInput: Sendable, Equatable {
    case decide(DecisionRequest)
    case expire
    case cancel
    case claim
    case finish(succeeded: Bool)
    case crash
    /// Re-run an interrupted call; allowed only for idempotent tools.
    case rerun(idempotent: Bool)
}

/// Side effects the caller must carry out after committing a transition.
public enum ConfirmationEffect: Sendable, Equatable {
    case emitDecided
    case emitExpired
    case recordGrant
    case startTool
    case tellModelDeclined(reason: String)
    case tellModelExpired
    case tellModelCancelled
    case tellModelOutcomeUnknown
}

/// The result of offering an input to the machine: the next status (equal to the
/// current one when nothing changes), the effects, and the error to report, if any.
/// A transition can both move and reject: deciding a pending confirmation after its
/// expiry moves it to `expired` and reports 410.
public struct ConfirmationTransition: Sendable, Equatable {
    public var next: ConfirmationStatus
    public var effects: [ConfirmationEffect]
    public var rejection: CountersignError?

    public var changed: Bool { rejection == nil || effects.contains(.emitExpired) }
}

/// The confirmation state machine as a pure value: a status, the expiry and the hash
/// of the params shown. Both stores run every transition through it.
public struct ConfirmationMachine: Sendable, Equatable {
    public var status: ConfirmationStatus
    public var expiresAt: Date
    public var paramsHash: String

    public init(status: ConfirmationStatus, expiresAt: Date, paramsHash: String) {
        self.status = status
        self.expiresAt = expiresAt
        self.paramsHash = paramsHash
    }

    /// Offers `input` at time `now` and returns what should happen. Does not mutate.
    public func transition(_ input: ConfirmationInput, at now: Date) -> ConfirmationTransition {
        func move(_ next: ConfirmationStatus, _ effects: [ConfirmationEffect] = []) -> ConfirmationTransition {
            ConfirmationTransition(next: next, effects: effects, rejection: nil)
        }
        func reject(_ error: CountersignError) -> ConfirmationTransition {
            ConfirmationTransition(next: status, effects: [], rejection: error)
        }
        let illegal = { (what: String) in
            reject(CountersignError(.validationError, "Cannot \(what) a confirmation that is \(status.rawValue)."))
        }

        switch (status, input) {
        case (.pending, .decide(let request)):
            if now >= expiresAt {
                return ConfirmationTransition(
                    next: .expired, effects: [.emitExpired, .tellModelExpired],
                    rejection: CountersignError(.expired, "The confirmation expired before it was decided."))
            }
            if let shown = request.paramsHash, shown.lowercased() != paramsHash {
                return reject(
                    CountersignError(
                        .paramsMismatch, "params_hash does not match the pending call's parameters.",
                        details: ["expected": .string(paramsHash), "received": .string(shown)]))
            }
            switch request.kind {
            case .approve:
                return move(.approved, request.remember == .session ? [.emitDecided, .recordGrant] : [.emitDecided])
            case .deny:
                let reason = request.denyReason
                return move(.denied, [.emitDecided, .tellModelDeclined(reason: reason)])
            }
        case (.expired, .decide):
            return reject(CountersignError(.expired, "The confirmation expired before it was decided."))
        case (_, .decide):
            return reject(CountersignError(.alreadyDecided, "The confirmation was already decided."))

        case (.pending, .expire):
            return now >= expiresAt
                ? move(.expired, [.emitExpired, .tellModelExpired]) : illegal("expire (not yet due)")
        case (_, .expire):
            return illegal("expire")

        case (.pending, .cancel), (.approved, .cancel):
            return move(.cancelled, [.tellModelCancelled])
        case (_, .cancel):
            return illegal("cancel")

        case (.approved, .claim):
            return move(.executing, [.startTool])
        case (_, .claim):
            return illegal("claim")

        case (.executing, .finish(let succeeded)):
            return move(succeeded ? .succeeded : .failed)
        case (_, .finish):
            return illegal("finish")

        case (.executing, .crash):
            return move(.interrupted)
        case (_, .crash):
            return illegal("interrupt")

        case (.interrupted, .rerun(let idempotent)):
            return idempotent ? move(.executing, [.startTool]) : move(.failed, [.tellModelOutcomeUnknown])
        case (_, .rerun):
            return illegal("re-run")
        }
    }
}
