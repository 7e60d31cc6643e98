// Package deploy holds the demo stack's configuration (Prometheus, Grafana, the RTSP server, sestream's stream
// list); its tests validate docker-compose.yml and the Dockerfile, and run the Prometheus configuration, the
// alert rules and the dashboard's queries in Debian's Prometheus against a live sestream.
package deploy
