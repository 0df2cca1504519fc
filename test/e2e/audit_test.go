package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/portico-dev/portico/test/e2e/harness"
)

// auditPolicy makes the suite's API server record, in its audit log, every write to the status of
// the objects the operator reports on (metadata only: who, when, what) and every write to a Lease
// in the operator's namespace with its body (the holderIdentity). That is enough to check "no two
// status writers at once" from the API server's side: each operator replica runs as its own user,
// and its status writes must fall inside the periods in which its lease writes say it held the
// lease.
func auditPolicy() string {
	return fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
omitManagedFields: true
rules:
- level: Request
  verbs: ["create", "update", "patch"]
  namespaces: [%q]
  resources:
  - group: coordination.k8s.io
    resources: ["leases"]
- level: Metadata
  verbs: ["create", "update", "patch"]
  resources:
  - group: edge.portico.dev
    resources: ["tenantroutes/status", "edgeproxies/status"]
  - group: networking.k8s.io
    resources: ["ingresses/status"]
  - group: gateway.networking.k8s.io
    resources: ["gateways/status", "httproutes/status", "gatewayclasses/status"]
- level: None
`, operatorNamespace)
}

// leaseHold is one period in which one operator process held the operator lease, as its lease
// writes show: from the write that made it the holder to the earliest of its release (a write
// with an empty holderIdentity), another holder's acquisition, and its last renewal + the lease
// duration (after which another replica may take the lease).
type leaseHold struct {
	user, identity string
	start, end     time.Time
	renewals       int
	endedBy        string
}

func (h leaseHold) String() string {
	return fmt.Sprintf("%s (%s) %s–%s, %d renewals, ended by %s", h.user, h.identity,
		h.start.Format("15:04:05.000"), h.end.Format("15:04:05.000"), h.renewals, h.endedBy)
}

// statusWriterReport is what the audit log says about status writes and the lease.
type statusWriterReport struct {
	holds      []leaseHold
	writes     map[string]int // successful status writes per user, in the window
	attempts   map[string]int // status write requests per user (any answer), in the window
	byResource map[string]int // "user resource" → successful writes
	outside    []outsideWrite // status write requests by an operator replica outside its holds
	handovers  []string
	// leaseRequests are the times of every lease write request per user, whatever the answer.
	leaseRequests map[string][]time.Time
}

// outsideWrite is a status write request received while its sender did not hold the lease.
type outsideWrite struct {
	user string
	at   time.Time
	// heldBy is the user holding the lease when the request was received ("" while nobody did).
	heldBy string
	desc   string
}

// auditStatusWriters reads the audit log and checks every status write request by the users
// whose name starts with userPrefix received in [since, until] against the lease holds.
func auditStatusWriters(auditLog, userPrefix string, since, until time.Time) statusWriterReport {
	GinkgoHelper()
	events, err := harness.ReadAudit(auditLog)
	Expect(err).NotTo(HaveOccurred())
	r := statusWriterReport{writes: map[string]int{}, attempts: map[string]int{}, byResource: map[string]int{}, leaseRequests: map[string][]time.Time{}}
	var leases, status []harness.AuditEvent
	for _, e := range events {
		switch {
		case e.ObjectRef == nil:
		case e.ObjectRef.Resource == "leases" && e.ObjectRef.Name == leaseName && e.ObjectRef.Namespace == operatorNamespace:
			r.leaseRequests[e.User.Username] = append(r.leaseRequests[e.User.Username], e.RequestReceivedTimestamp.Time)
			if e.Succeeded() {
				leases = append(leases, e)
			}
		case e.ObjectRef.Subresource == "status":
			status = append(status, e)
		}
	}
	// Lease writes in the order the API server committed them.
	slices.SortStableFunc(leases, func(a, b harness.AuditEvent) int { return a.StageTimestamp.Compare(b.StageTimestamp.Time) })
	var cur *leaseHold
	var curRenew time.Time
	var curDur time.Duration
	closeHold := func(at time.Time, by string) {
		end := at
		if exp := curRenew.Add(curDur); exp.Before(end) {
			end, by = exp, "expiry (no renewal for "+curDur.String()+")"
		}
		cur.end, cur.endedBy = end, by
		r.holds = append(r.holds, *cur)
		cur = nil
	}
	for _, e := range leases {
		var body struct {
			Spec struct {
				HolderIdentity       *string `json:"holderIdentity"`
				LeaseDurationSeconds *int32  `json:"leaseDurationSeconds"`
			} `json:"spec"`
		}
		Expect(json.Unmarshal(e.RequestObject, &body)).To(Succeed(), "lease write %s without its body (audit level Request)", e.AuditID)
		holder := ""
		if body.Spec.HolderIdentity != nil {
			holder = *body.Spec.HolderIdentity
		}
		dur := 15 * time.Second
		if body.Spec.LeaseDurationSeconds != nil {
			dur = time.Duration(*body.Spec.LeaseDurationSeconds) * time.Second
		}
		at := e.RequestReceivedTimestamp.Time
		if cur != nil && holder == cur.identity && e.User.Username == cur.user {
			cur.renewals++
			curRenew, curDur = at, dur
			continue
		}
		if cur != nil {
			if holder == "" {
				closeHold(at, "release by "+e.User.Username)
			} else {
				closeHold(at, "acquisition by "+e.User.Username)
			}
		}
		if holder != "" {
			if len(r.holds) > 0 && r.holds[len(r.holds)-1].identity != holder && !at.Before(since) {
				prev := r.holds[len(r.holds)-1]
				r.handovers = append(r.handovers, fmt.Sprintf("%s → %s at %s (%v after the previous hold ended)",
					prev.user, e.User.Username, at.Format("15:04:05.000"), at.Sub(prev.end).Round(time.Millisecond)))
			}
			cur = &leaseHold{user: e.User.Username, identity: holder, start: at}
			curRenew, curDur = at, dur
		}
	}
	if cur != nil {
		closeHold(until, "still held")
	}
	for _, e := range status {
		at := e.RequestReceivedTimestamp.Time
		u := e.User.Username
		if !strings.HasPrefix(u, userPrefix) || at.Before(since) || at.After(until) {
			continue
		}
		r.attempts[u]++
		if e.Succeeded() {
			r.writes[u]++
			r.byResource[u+" "+e.ObjectRef.Resource]++
		}
		held, other := false, ""
		for _, h := range r.holds {
			if !at.Before(h.start) && !at.After(h.end) {
				if h.user == u {
					held = true
					break
				}
				other = h.user
			}
		}
		if !held {
			code := 0
			if e.ResponseStatus != nil {
				code = e.ResponseStatus.Code
			}
			r.outside = append(r.outside, outsideWrite{user: u, at: at, heldBy: other, desc: fmt.Sprintf("%s %s %s/status %s/%s at %s → %d (lease held by: %s)", u, e.Verb, e.ObjectRef.Resource,
				e.ObjectRef.Namespace, e.ObjectRef.Name, at.Format("15:04:05.000000"), code, cmp.Or(other, "nobody"))})
		}
	}
	return r
}

// operatorPause is the last time the suite froze the operator replicas (SIGSTOP) for longer than
// the lease: the full control-plane outage. Zero when it did not happen.
var operatorPause struct {
	from, to time.Time
}

// expectOneStatusWriter asserts, from the audit log, that no status write request of an operator
// replica since the fleet started was received while another replica held the lease, and reports
// the writes per replica, the handovers, and the writes received while nobody led under name.
// afterPause says the full outage (operatorPause) is in the window: a leader frozen past its lease
// must not write after the thaw until it renewed (the lease fence), which the assertion covers.
func expectOneStatusWriter(name string, f *operatorFleet, afterPause bool) {
	GinkgoHelper()
	until := time.Now()
	// The API server logs each event before it answers (blocking mode); wait for the leader's next
	// renewal after until so that everything received before until is on file.
	Eventually(func() bool {
		events, err := harness.ReadAudit(cluster.AuditLog)
		if err != nil {
			return false
		}
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if e.ObjectRef != nil && e.ObjectRef.Resource == "leases" && e.StageTimestamp.After(until) {
				return true
			}
		}
		return false
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue(), "no lease write after %s in the audit log", until)
	r := auditStatusWriters(cluster.AuditLog, fleetUserPrefix, f.started, until)
	var holds, perUser []string
	for _, h := range r.holds {
		if h.end.After(f.started) {
			holds = append(holds, h.String())
		}
	}
	users := make([]string, 0, len(r.attempts))
	for u := range r.attempts {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		var kinds []string
		for k, n := range r.byResource {
			if strings.HasPrefix(k, u+" ") {
				kinds = append(kinds, fmt.Sprintf("%s %d", strings.TrimPrefix(k, u+" "), n))
			}
		}
		slices.Sort(kinds)
		perUser = append(perUser, fmt.Sprintf("%s %d writes (%d requests: %s)", u, r.writes[u], r.attempts[u], strings.Join(kinds, ", ")))
	}
	fmt.Fprintf(GinkgoWriter, "lease holds since %s:\n  %s\n", f.started.Format("15:04:05.000"), strings.Join(holds, "\n  "))
	// Two writers at once means a write received while another replica held the lease. A write
	// received while nobody held it is not: with the API server frozen, requests the leader sent
	// in time are received (and audited) only at the thaw, after its hold ran out; nobody else
	// led meanwhile. Those are counted and reported.
	var conflicts, between []string
	for _, w := range r.outside {
		if w.heldBy != "" {
			conflicts = append(conflicts, w.desc)
		} else {
			between = append(between, w.desc)
		}
	}
	pauseNote := ""
	if afterPause && !operatorPause.to.IsZero() {
		pauseNote = fmt.Sprintf("; after the %v freeze of every replica, the fence (internal/leasefence) kept the thawed leader from writing until it renewed",
			operatorPause.to.Sub(operatorPause.from).Round(time.Second))
	}
	figure(name, "%d handovers (%s); status writes %s; %d requests received while another replica held the lease (bar: 0); %d received between holds, while nobody led%s",
		len(r.handovers), strings.Join(r.handovers, "; "), strings.Join(perUser, "; "), len(conflicts), len(between), pauseNote)
	if len(between) > 0 {
		fmt.Fprintf(GinkgoWriter, "status writes received while nobody held the lease:\n  %s\n", strings.Join(between, "\n  "))
	}
	Expect(conflicts).To(BeEmpty(), "status writes received while another replica held the lease")
}
