package controllers

import (
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// maxConditionMessage keeps condition messages well inside the API's 32 KiB limit.
const maxConditionMessage = 4096

// setCondition sets one condition, stamped with the generation it describes. LastTransitionTime
// moves only when the status flips (meta.SetStatusCondition). It reports whether anything changed.
func setCondition(conds *[]metav1.Condition, t edgev1alpha1.ConditionType, status metav1.ConditionStatus,
	reason edgev1alpha1.ConditionReason, message string, generation int64) bool {
	message = truncate(message, maxConditionMessage, "...")
	return meta.SetStatusCondition(conds, metav1.Condition{
		Type:               string(t),
		Status:             status,
		Reason:             string(reason),
		Message:            message,
		ObservedGeneration: generation,
	})
}

// boolStatus turns a bool into a condition status.
func boolStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// findCondition returns a copy of the condition of type t, or nil.
func findCondition(conds []metav1.Condition, t edgev1alpha1.ConditionType) *metav1.Condition {
	c := meta.FindStatusCondition(conds, string(t))
	if c == nil {
		return nil
	}
	out := *c
	return &out
}

// sameCondition reports whether two conditions say the same thing (timestamps aside).
func sameCondition(a, b *metav1.Condition) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message
}

// maxEventNote is the longest note an events.k8s.io Event may carry (1 KiB).
const maxEventNote = 1024

// eventNote shortens a condition message to fit an Event; the condition keeps the whole text.
func eventNote(msg string) string {
	return truncate(msg, maxEventNote, "... (see status)")
}

// truncate cuts s to at most max bytes ending with suffix, never inside a UTF-8 sequence.
func truncate(s string, max int, suffix string) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(suffix)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + suffix
}
