// Package stack runs the architecture of a scaled-out pgshard service on this machine,
// in Docker containers: HAProxy in front of several reference-server instances, shards
// of a primary and streaming replicas, and Prometheus scraping every instance. Every
// image is made here, from Debian's packages (see pgcluster.EnsureDebianImage) and the
// server's own binary, with no registry.
//
// Every container uses the host's network, each process on a port of 127.0.0.1 of its
// own, so that no packet leaves loopback: replicas stream from 127.0.0.1, HAProxy
// forwards to 127.0.0.1, Prometheus scrapes 127.0.0.1.
//
// A Stack lives as long as the process that made it: Close removes every container,
// and Down removes those of a process that died without closing its stack.
package stack
