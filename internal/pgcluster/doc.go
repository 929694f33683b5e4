// Package pgcluster starts real PostgreSQL topologies on this machine, N shards of one
// primary and M streaming replicas each, for pgshard's tests, benchmarks and dev server.
//
// A test package shares one cluster through TestMain:
//
//	var cluster *pgcluster.Cluster
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2, Replicas: 1}, &cluster))
//	}
//
// and a test connects with cluster.Shards()[0].Primary.DSN(). A test that changes the
// topology (Promote) starts a small cluster of its own with Start and closes it.
//
// Every node listens on 127.0.0.1 on a free port, has the database and the password
// login role that Options names, and a superuser postgres with the same password
// (Node.SuperDSN). Each shard's primary has a system identifier of its own, which its
// replicas share, so that a check of which primary a replica follows means something.
//
// # Faults
//
// Fault injection for tests is on Node: Stop, Start, Kill, Promote, PauseReplay,
// ResumeReplay, SetSetting, SuperExec (pg_terminate_backend), and Freeze and Thaw, which
// stop every process of a node cold (SIGSTOP) and let it run again. A frozen node is never
// left behind: FreezeForTest thaws at the end of the test, and Stop, Kill and Close thaw
// first.
//
// Faults on the path of one client to one node go through a Proxy (Node.Proxy): the test
// gives the proxy's DSN to that client alone, then blackholes, severs, slows or makes
// lossy its path, and heals it. Close closes the cluster's proxies.
//
// # Backends
//
// The local backend runs the server binaries of this machine (initdb, postgres,
// pg_basebackup; the highest version that is at least 15), as the system user postgres
// when the process runs as root. initdb runs once per version and role: its result is
// cached under os.TempDir() and copied for each primary, which then gets a system
// identifier of its own (see pg_resetwal); replicas are cloned with pg_basebackup. Each
// postmaster is a child of the test process and receives SIGQUIT from the kernel if that
// process dies, so that no server outlives a test binary that crashed or was killed; the
// folders such a binary leaves are removed by the next Start.
//
// The docker backend runs one container per node, with host networking: each server on
// its own port of 127.0.0.1, replicas streaming from 127.0.0.1. Its script runs initdb or
// pg_basebackup and postgres as the image's user postgres, so any image with the server
// binaries works; the default, DefaultImage, is built with no registry (EnsureImage).
// Containers of a test process that died are removed by the next Start.
//
// The environment variable PGSHARD_PG_BACKEND chooses: auto (the default: docker if a
// Docker engine answers within a second and has the image, else local, with
// Cluster.BackendReason saying why), local or docker. Options.Backend, when set, wins.
// PGSHARD_PG_IMAGE names the image when Options.Image is empty.
package pgcluster
