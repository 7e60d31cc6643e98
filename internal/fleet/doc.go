// Package fleet shares a configuration's streams among the instances of a fleet through leases in a JetStream key-value bucket.
package fleet
