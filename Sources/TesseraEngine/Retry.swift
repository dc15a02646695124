// Retry.swift
//
// Why this file exists: a failed attempt is tried again when its stage's
// policy says so (TesseraConfig/Retry.swift), after an exponential backoff
// with full jitter (the delay drawn uniformly from zero up to
// `backoff * 2^(attempt-1)`, capped by `max_backoff`), so that microtasks
// failing together against one overloaded service do not come back
// together. This file decides whether an attempt is retried and when, and
// keeps the waiting retries in due order; Engine.swift moves them into
// their stage's queue when they are due. The due time is stored (wall
// clock), so a waiting retry survives a restart.

import TesseraConfig
import TesseraProtocol

/// What becomes of a failed attempt.
enum RetryDecision: Equatable {
    /// Tried again after this many milliseconds.
    case retry(after: UInt64)
    /// Not tried again; the reason gets this note, if any.
    case final(note: String?)
}

extension RetryPolicy {
    /// Whether an attempt that ended as `completion` is tried again.
    /// `random` gives a number in [0, 1) for the jitter.
    func decide(attempt: Int, _ completion: TaskCompletion, random: () -> Double) -> RetryDecision {
        guard completion.state == .failed else { return .final(note: nil) }
        let permanent = completion.permanent || completion.exitCode.map(permanentExitCodes.contains) == true
        let retried = on.contains(completion.failure ?? .failed)
        guard attempts > 1, retried else { return .final(note: nil) }
        if permanent { return .final(note: "permanent failure, not retried") }
        guard attempt < attempts else { return .final(note: "attempt \(attempt) of \(attempts)") }
        let ceiling = ceiling(afterAttempt: attempt)
        guard jitter else { return .retry(after: ceiling) }
        let drawn = (random() * Double(ceiling + 1)).rounded(.down)
        return .retry(after: min(ceiling, UInt64(max(0, drawn))))
    }
}

/// A failed attempt's microtask waiting for its retry.
struct WaitingRetry {
    /// Monotonic ms.
    var due: UInt64
    var sequence: UInt64
    let run: EngineRun
    let stage: EngineStage
    /// The stage's retryGeneration when it was queued.
    let generation: Int
    let task: QueuedTask
}

/// The waiting retries, earliest due first (a binary min-heap; ties in the
/// order they were queued).
struct RetryQueue {
    private var heap: [WaitingRetry] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var earliest: UInt64? { heap.first?.due }

    mutating func push(_ entry: WaitingRetry) {
        var entry = entry
        sequence += 1
        entry.sequence = sequence
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry due at `now`, if any.
    mutating func popDue(at now: UInt64) -> WaitingRetry? {
        guard let first = heap.first, first.due <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count, precedes(heap[left], heap[smallest]) { smallest = left }
                if right < heap.count, precedes(heap[right], heap[smallest]) { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }

    /// Drops the entries `stale` says are stale (rare: a cancel).
    mutating func removeAll(where stale: (WaitingRetry) -> Bool) {
        let kept = heap.filter { !stale($0) }
        guard kept.count != heap.count else { return }
        heap = []
        for entry in kept.sorted(by: precedes) { heap.append(entry) }
    }

    private func precedes(_ a: WaitingRetry, _ b: WaitingRetry) -> Bool {
        a.due != b.due ? a.due < b.due : a.sequence < b.sequence
    }
}
