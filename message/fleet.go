package message

import "time"

// SchemaFleet is the schema of a fleet member's status message.
const SchemaFleet = "sestream.fleet/v1"

// FleetSubject returns the subject of fleet status messages: <prefix>.status.fleet.
func FleetSubject(prefix string) string { return prefix + ".status.fleet" }

// FleetStatus is one fleet member's periodic report on FleetSubject: who it is, what it sees of the fleet,
// and the streams it holds leases on.
type FleetStatus struct {
	Schema string `json:"schema"`
	// Fleet is fleet.name; Instance is fleet.instance (or the host name); BootID identifies this process and
	// is the boot id in its messages' Nats-Msg-Id headers.
	Fleet    string    `json:"fleet"`
	Instance string    `json:"instance"`
	BootID   string    `json:"boot_id"`
	Time     time.Time `json:"time"`
	Joined   time.Time `json:"joined"`
	// Members are the boot ids of the live members this instance saw at its last renewal, itself included.
	Members []string `json:"members"`
	// Desired is the number of streams in the fleet's stream list; Share is this instance's fair share of
	// them, ceil(desired / members).
	Desired int `json:"desired"`
	Share   int `json:"share"`
	// Streams are the streams this instance holds a lease on, sorted by name.
	Streams []FleetStream `json:"streams"`
	Moves   FleetMoves    `json:"moves"`
}

// FleetStream is one lease held.
type FleetStream struct {
	Name string `json:"name"`
	// Since is when this instance acquired the lease; RenewedAgoS is the time since its last renewal was
	// confirmed, in seconds.
	Since       time.Time `json:"since"`
	RenewedAgoS float64   `json:"renewed_ago_s"`
}

// FleetMoves counts lease changes of one instance since it joined.
type FleetMoves struct {
	// Acquired counts leases taken (streams started); Released, leases given up on purpose (rebalancing, a
	// stream removed from the list, shutdown); Lost, leases that could not be renewed (the stream was stopped
	// without a handover).
	Acquired uint64 `json:"acquired"`
	Released uint64 `json:"released"`
	Lost     uint64 `json:"lost"`
}
