// Package deploy holds the demo stack's configuration (Prometheus, Grafana, the RTSP server, sestream's stream
// list); its tests validate docker-compose.yml, the Dockerfile and the dashboard against sestream itself.
package deploy
