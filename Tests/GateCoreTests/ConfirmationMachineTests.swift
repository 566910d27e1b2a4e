import Foundation
import GateCore
import Testing

// Every input is offered just before, exactly at, or just after the expiry.
private let expiresAt = Date(timeIntervalSince1970: 1_800_000_000)
private let beforeExpiry = expiresAt.addingTimeInterval(-0.001)
private let afterExpiry = expiresAt.addingTimeInterval(0.001)

private let shownParams: JSONValue = ["path": "notes/today.md", "text": "Buy milk"]
private let shownHash = shownParams.canonicalHash
private let otherParams: JSONValue = ["path": "notes/today.md", "text": "Sell milk"]
private let otherHash = otherParams.canonicalHash
private let denyReason = "Not on a Friday."

/// One kind of input the gate can receive, together with the moment it arrives.
enum MachineInput: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case approve
    case approveRememberSession
    case denyDefaultReason
    case denyWithReason
    case approveMatchingHash
    case approveMatchingHashUppercased
    case approveMismatchingHash
    case denyMismatchingHash
    case approveAtExpiry
    case approveAfterExpiry
    case denyAfterExpiry
    case approveMismatchingHashAfterExpiry
    case expireBeforeDue
    case expireAtDue
    case expireAfterDue
    case cancel
    case claim
    case finishSucceeded
    case finishFailed
    case crash
    case rerunIdempotent
    case rerunNotIdempotent

    var testDescription: String { rawValue }

    var input: ConfirmationInput {
        switch self {
        case .approve, .approveAtExpiry, .approveAfterExpiry: .decide(DecisionRequest(kind: .approve))
        case .approveRememberSession: .decide(DecisionRequest(kind: .approve, remember: .session))
        case .denyDefaultReason, .denyAfterExpiry: .decide(DecisionRequest(kind: .deny))
        case .denyWithReason: .decide(DecisionRequest(kind: .deny, reason: denyReason))
        case .approveMatchingHash: .decide(DecisionRequest(kind: .approve, paramsHash: shownHash))
        case .approveMatchingHashUppercased:
            .decide(DecisionRequest(kind: .approve, paramsHash: shownHash.uppercased()))
        case .approveMismatchingHash, .approveMismatchingHashAfterExpiry:
            .decide(DecisionRequest(kind: .approve, paramsHash: otherHash))
        case .denyMismatchingHash: .decide(DecisionRequest(kind: .deny, paramsHash: otherHash))
        case .expireBeforeDue, .expireAtDue, .expireAfterDue: .expire
        case .cancel: .cancel
        case .claim: .claim
        case .finishSucceeded: .finish(succeeded: true)
        case .finishFailed: .finish(succeeded: false)
        case .crash: .crash
        case .rerunIdempotent: .rerun(idempotent: true)
        case .rerunNotIdempotent: .rerun(idempotent: false)
        }
    }

    var now: Date {
        switch self {
        case .approveAtExpiry, .expireAtDue: expiresAt
        case .approveAfterExpiry, .denyAfterExpiry, .approveMismatchingHashAfterExpiry, .expireAfterDue: afterExpiry
        default: beforeExpiry
        }
    }

    /// A decision that arrives when the confirmation is due (now ≥ expiresAt).
    var isLateDecision: Bool {
        switch self {
        case .approveAtExpiry, .approveAfterExpiry, .denyAfterExpiry, .approveMismatchingHashAfterExpiry: true
        default: false
        }
    }
}

/// What the machine must answer: where it goes (`nil`: it stays), the effects, and the rejection code.
struct ExpectedOutcome: Sendable, Equatable {
    var next: ConfirmationStatus?
    var effects: [ConfirmationEffect]
    var rejection: CountersignError.Code?

    static func moves(to next: ConfirmationStatus, _ effects: ConfirmationEffect...) -> ExpectedOutcome {
        ExpectedOutcome(next: next, effects: effects, rejection: nil)
    }

    static func rejected(_ code: CountersignError.Code) -> ExpectedOutcome {
        ExpectedOutcome(next: nil, effects: [], rejection: code)
    }
}

private let approved = ExpectedOutcome.moves(to: .approved, .emitDecided)
private let granted = ExpectedOutcome.moves(to: .approved, .emitDecided, .recordGrant)
private let deniedByDefault = ExpectedOutcome.moves(
    to: .denied, .emitDecided, .tellModelDeclined(reason: "User rejected the action."))
private let deniedWithReason = ExpectedOutcome.moves(to: .denied, .emitDecided, .tellModelDeclined(reason: denyReason))
private let expiredNow = ExpectedOutcome.moves(to: .expired, .emitExpired, .tellModelExpired)
/// Deciding a pending confirmation that is due: it moves to `expired` *and* the decision is refused.
private let expiredOnDecision = ExpectedOutcome(
    next: .expired, effects: [.emitExpired, .tellModelExpired], rejection: .expired)
private let cancelled = ExpectedOutcome.moves(to: .cancelled, .tellModelCancelled)
private let mismatch = ExpectedOutcome.rejected(.paramsMismatch)
private let decided = ExpectedOutcome.rejected(.alreadyDecided)
private let tooLate = ExpectedOutcome.rejected(.expired)
private let illegal = ExpectedOutcome.rejected(.validationError)

/// The full table, written out cell by cell: status × input → outcome.
private let expectedTable: [ConfirmationStatus: [MachineInput: ExpectedOutcome]] = [
    .pending: [
        .approve: approved, .approveRememberSession: granted,
        .denyDefaultReason: deniedByDefault, .denyWithReason: deniedWithReason,
        .approveMatchingHash: approved, .approveMatchingHashUppercased: approved,
        .approveMismatchingHash: mismatch, .denyMismatchingHash: mismatch,
        .approveAtExpiry: expiredOnDecision, .approveAfterExpiry: expiredOnDecision,
        .denyAfterExpiry: expiredOnDecision, .approveMismatchingHashAfterExpiry: expiredOnDecision,
        .expireBeforeDue: illegal, .expireAtDue: expiredNow, .expireAfterDue: expiredNow,
        .cancel: cancelled, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .approved: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: cancelled, .claim: .moves(to: .executing, .startTool),
        .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .executing: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal,
        .finishSucceeded: .moves(to: .succeeded), .finishFailed: .moves(to: .failed),
        .crash: .moves(to: .interrupted), .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .interrupted: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal, .crash: illegal,
        .rerunIdempotent: .moves(to: .executing, .startTool),
        .rerunNotIdempotent: .moves(to: .failed, .tellModelOutcomeUnknown),
    ],
    .succeeded: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .failed: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .denied: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .expired: [
        .approve: tooLate, .approveRememberSession: tooLate,
        .denyDefaultReason: tooLate, .denyWithReason: tooLate,
        .approveMatchingHash: tooLate, .approveMatchingHashUppercased: tooLate,
        .approveMismatchingHash: tooLate, .denyMismatchingHash: tooLate,
        .approveAtExpiry: tooLate, .approveAfterExpiry: tooLate,
        .denyAfterExpiry: tooLate, .approveMismatchingHashAfterExpiry: tooLate,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
    .cancelled: [
        .approve: decided, .approveRememberSession: decided,
        .denyDefaultReason: decided, .denyWithReason: decided,
        .approveMatchingHash: decided, .approveMatchingHashUppercased: decided,
        .approveMismatchingHash: decided, .denyMismatchingHash: decided,
        .approveAtExpiry: decided, .approveAfterExpiry: decided,
        .denyAfterExpiry: decided, .approveMismatchingHashAfterExpiry: decided,
        .expireBeforeDue: illegal, .expireAtDue: illegal, .expireAfterDue: illegal,
        .cancel: illegal, .claim: illegal, .finishSucceeded: illegal, .finishFailed: illegal,
        .crash: illegal, .rerunIdempotent: illegal, .rerunNotIdempotent: illegal,
    ],
]

private func machine(_ status: ConfirmationStatus) -> ConfirmationMachine {
    ConfirmationMachine(status: status, expiresAt: expiresAt, paramsHash: shownHash)
}

@Suite("ConfirmationMachine")
struct ConfirmationMachineTests {
    @Test("The expected table has a cell for every status and every input")
    func tableIsComplete() {
        #expect(Set(expectedTable.keys) == Set(ConfirmationStatus.allCases))
        for status in ConfirmationStatus.allCases {
            let inputs = expectedTable[status].map { Set($0.keys) } ?? []
            #expect(inputs == Set(MachineInput.allCases), "\(status)")
        }
    }

    @Test(
        "Every status × input gives the tabulated outcome",
        arguments: ConfirmationStatus.allCases, MachineInput.allCases)
    func transitionTable(status: ConfirmationStatus, input: MachineInput) throws {
        let expected = try #require(expectedTable[status]?[input])
        let transition = machine(status).transition(input.input, at: input.now)

        #expect(transition.next == (expected.next ?? status))
        #expect(transition.effects == expected.effects)
        #expect(transition.rejection?.code == expected.rejection)
        #expect(transition.changed == (expected.rejection == nil || expected.next != nil))

        if transition.rejection != nil {
            if status == .pending && input.isLateDecision {
                #expect(transition.next == .expired)
                #expect(transition.rejection?.code == .expired)
            } else {
                #expect(transition.next == status, "a rejected transition must not move")
                #expect(transition.effects.isEmpty, "a rejected transition must not have effects")
            }
        }
    }

    @Test("A successful transition always leaves the status it started from")
    func successfulTransitionsMove() {
        for status in ConfirmationStatus.allCases {
            for input in MachineInput.allCases {
                let transition = machine(status).transition(input.input, at: input.now)
                if transition.rejection == nil {
                    #expect(transition.next != status, "\(status) × \(input)")
                }
            }
        }
    }

    @Test("Settled statuses accept no transition at all", arguments: ConfirmationStatus.allCases.filter(\.isSettled))
    func settledStatusesAreFinal(status: ConfirmationStatus) {
        for input in MachineInput.allCases {
            let transition = machine(status).transition(input.input, at: input.now)
            #expect(transition.rejection != nil, "\(input)")
            #expect(transition.next == status)
            #expect(!transition.changed)
        }
    }

    @Test(
        "isSettled",
        arguments: [
            (ConfirmationStatus.pending, false), (.approved, false), (.executing, false), (.interrupted, false),
            (.succeeded, true), (.failed, true), (.denied, true), (.expired, true), (.cancelled, true),
        ])
    func isSettled(status: ConfirmationStatus, settled: Bool) {
        #expect(status.isSettled == settled)
    }

    @Test("The expiry boundary: due at exactly expiresAt, not one millisecond before")
    func expiryBoundary() {
        let pending = machine(.pending)
        let approve = ConfirmationInput.decide(DecisionRequest(kind: .approve))

        #expect(pending.transition(approve, at: beforeExpiry).next == .approved)
        #expect(pending.transition(approve, at: expiresAt).rejection?.code == .expired)
        #expect(pending.transition(.expire, at: beforeExpiry).rejection?.code == .validationError)
        #expect(pending.transition(.expire, at: expiresAt).next == .expired)
        #expect(pending.transition(.expire, at: expiresAt).rejection == nil)
    }

    @Test("A params_hash mismatch reports what was expected and what was received")
    func paramsMismatchDetails() throws {
        let transition = machine(.pending).transition(
            .decide(DecisionRequest(kind: .approve, paramsHash: otherHash)), at: beforeExpiry)
        let error = try #require(transition.rejection)
        #expect(error.code == .paramsMismatch)
        #expect(error.httpStatus == 409)
        #expect(error.details?["expected"] == .string(shownHash))
        #expect(error.details?["received"] == .string(otherHash))
    }

    @Test("The hash check binds to the shown params, not to the approver's edits")
    func editedParamsDoNotChangeTheHashCheck() {
        let edited: JSONValue = ["path": "notes/today.md", "text": "Buy oat milk"]
        let transition = machine(.pending).transition(
            .decide(DecisionRequest(kind: .approve, editedParams: edited, paramsHash: shownHash)), at: beforeExpiry)
        #expect(transition.next == .approved)
        #expect(transition.rejection == nil)

        let hashOfEdit = machine(.pending).transition(
            .decide(DecisionRequest(kind: .approve, editedParams: edited, paramsHash: edited.canonicalHash)),
            at: beforeExpiry)
        #expect(hashOfEdit.rejection?.code == .paramsMismatch)
    }

    @Test("Rejections map to the native status codes")
    func rejectionStatusCodes() {
        let approve = ConfirmationInput.decide(DecisionRequest(kind: .approve))
        #expect(machine(.pending).transition(approve, at: afterExpiry).rejection?.httpStatus == 410)
        #expect(machine(.expired).transition(approve, at: beforeExpiry).rejection?.httpStatus == 410)
        #expect(machine(.denied).transition(approve, at: beforeExpiry).rejection?.httpStatus == 409)
        #expect(machine(.pending).transition(.claim, at: beforeExpiry).rejection?.httpStatus == 400)
    }

    @Test("Walking the lifecycle: approve, claim, crash, idempotent re-run, success")
    func lifecycleWalk() {
        var current = machine(.pending)
        let steps: [(ConfirmationInput, ConfirmationStatus)] = [
            (.decide(DecisionRequest(kind: .approve, paramsHash: shownHash)), .approved),
            (.claim, .executing),
            (.crash, .interrupted),
            (.rerun(idempotent: true), .executing),
            (.finish(succeeded: true), .succeeded),
        ]
        for (input, expected) in steps {
            let transition = current.transition(input, at: beforeExpiry)
            #expect(transition.rejection == nil)
            #expect(transition.next == expected)
            current.status = transition.next
        }
        // The call ran once; a second claim or decision is refused.
        #expect(current.transition(.claim, at: beforeExpiry).rejection != nil)
        #expect(
            current.transition(.decide(DecisionRequest(kind: .approve)), at: beforeExpiry).rejection?.code
                == .alreadyDecided)
    }
}
