// Suggestion.swift
//
// Why this file exists: an unknown key, executor, parameter or stage name is
// usually a typo, so its diagnostic proposes the closest known name:
// `unknown key "limts"; did you mean "limits"?`.

/// The candidate `word` was most likely meant to be, or nil when none is
/// close: a candidate within an edit distance of 2, or one that shares a
/// prefix of at least 4 characters with `word` (or starts with all of a
/// `word` of 3 characters or more). The nearest wins; ties go to the
/// earlier candidate.
public func suggestion(for word: String, among candidates: [String]) -> String? {
    var best: (candidate: String, distance: Int)?
    for candidate in candidates where candidate != word {
        let distance = editDistance(word, candidate)
        let prefix = zip(word, candidate).prefix { $0 == $1 }.count
        let sharesPrefix = prefix >= 4 || (prefix == word.count && prefix >= 3)
        guard distance <= 2 || sharesPrefix else { continue }
        if best == nil || distance < best!.distance {
            best = (candidate, distance)
        }
    }
    return best?.candidate
}

/// `; did you mean "x"?` when there is a suggestion, otherwise nothing.
func didYouMean(_ word: String, among candidates: [String]) -> String {
    suggestion(for: word, among: candidates).map { "; did you mean \(quoted($0))?" } ?? ""
}

/// The Levenshtein distance between two strings, counted in characters.
func editDistance(_ left: String, _ right: String) -> Int {
    let left = Array(left)
    let right = Array(right)
    var previous = Array(0...right.count)
    for (i, leftCharacter) in left.enumerated() {
        var current = [i + 1]
        for (j, rightCharacter) in right.enumerated() {
            let substitution = previous[j] + (leftCharacter == rightCharacter ? 0 : 1)
            current.append(min(previous[j + 1] + 1, current[j] + 1, substitution))
        }
        previous = current
    }
    return previous[right.count]
}
