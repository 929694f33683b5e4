// Package app is pgshard's reference HTTP server as a package: users and
// their posts over sharded PostgreSQL through a router.Router, with replica
// reads, a coherent cache, read-your-writes tokens, a recent feed gathered
// from every shard, Prometheus metrics and a live shard dashboard.
//
// The command in examples/server only reads its flags and calls Run. A test
// or another program runs the whole command with Run, or mounts the bare
// http.Handler that New returns over a router it opened itself:
//
//	topo, err := app.LoadTopology("topology.yaml") // or app.DevTopology(cluster)
//	r, err := router.Open(ctx, topo.RouterConfig(log))
//	srv, err := app.New(ctx, r, app.Options{Cache: topo.Cache, Redactor: app.NewRedactor(topo)})
//	defer srv.Close()
//	http.ListenAndServe("127.0.0.1:8080", srv)
//
// Files hold one concept each: flags.go and run.go the command, server.go
// the handler and its middleware, users.go and posts.go the API, topology.go
// the -config file, devcluster.go the dev mode, debug.go the dashboard and
// health pages, metrics.go /metrics, errors.go the mapping of errors to
// statuses.
package app
