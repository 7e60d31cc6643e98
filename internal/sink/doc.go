// Package sink is the last stage of a running pipeline: it turns inference results into result and attention
// messages (statistics, drift), publishes them with the stream's source and drift events, counts and measures
// what it publishes, and reports the pipeline's status (heartbeat messages and the console summary).
package sink
