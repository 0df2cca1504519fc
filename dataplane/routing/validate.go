package routing

// Exported forms of Compile's own checks, for translators (controllers/translate) that must refuse
// an input for exactly the reasons Compile would refuse what they produce from it. One
// implementation, so the two can never disagree.

// MatchPathProblem says why p is not a valid Exact or PathPrefix value, or "" when it is.
func MatchPathProblem(p string) string { return checkMatchPath(p) }

// ValidCORSOrigin reports whether s is a Gateway API CORSOrigin: "*" or http(s)://host[:port].
func ValidCORSOrigin(s string) bool { return checkOrigin(s) }

// IsToken reports whether s is an RFC 9110 token (header and cookie names).
func IsToken(s string) bool { return isToken(s) }
