// Package metrics exposes the pipeline's counters in Prometheus format and serves /metrics, /healthz and /readyz.
package metrics
