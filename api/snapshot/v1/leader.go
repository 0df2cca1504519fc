package snapshotv1

// NotLeaderMessage is the status message (code Unavailable) with which an operator replica that is
// not the leader refuses a snapshot stream. Only the leader serves snapshots: it is the one replica
// that writes status, and Programmed must count the ACKs of every connected proxy. A proxy told
// this dials again at once (a new connection, which the snapshot Service may give another replica)
// instead of backing off as after a failure.
const NotLeaderMessage = "not the leader: this operator replica does not serve snapshots"
