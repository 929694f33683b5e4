// Package prom exports a router's figures to Prometheus: a
// prometheus.Collector over Router.Stats (shards, nodes, lag, pools, caches,
// cache listeners), and a replica.Tracer that counts what the library
// decides (read attempts by role, fallbacks by reason, node events, write
// outcomes) into counters and histograms.
//
// A service registers both in its own registry: the Tracer goes into
// router.Config before Open, the Stats collector takes the opened Router.
// See the Example.
package prom
