// Package e2e holds pgshard's end-to-end tests: the chaos suite, which runs
// the reference server (package examples/server/app) on real PostgreSQL
// clusters from internal/pgcluster, drives it with loadgen over HTTP,
// injects faults and checks what the clients saw. It tests only through
// public surfaces: the app's exported API, HTTP, the router's Stats and
// Tracer, and pgcluster's fault tools.
//
//	go test -run TestChaos ./e2e                                     # short
//	go test -run TestChaos ./e2e -chaos=full -chaos.report=RELIABILITY.md  # make chaos
package e2e
