package prom_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgshard/pgshard/prom"
	"github.com/pgshard/pgshard/router"
)

// A service registers the router's figures in its own registry: the
// Tracer before Open, the Stats collector once the router is open.
func Example() {
	ctx := context.Background()
	sh := cluster.Shards()[0]
	tracer := prom.NewTracer(prom.TracerOptions{})
	r, err := router.Open(ctx, router.Config{
		Shards: []router.ShardConfig{{Name: "users", Range: "-", Primary: sh.Primary.DSN(), Replicas: []string{sh.Replicas[0].DSN()}}},
		Tracer: tracer,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewStats(r, prom.StatsOptions{}), tracer)
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "pgshard_shard_") {
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[1].GetValue(), m.GetGauge().GetValue()+m.GetCounter().GetValue())
		}
	}
	// Output:
	// pgshard_shard_primary_up users 1
	// pgshard_shard_rejected_reads_total users 0
	// pgshard_shard_split_brain users 0
}
