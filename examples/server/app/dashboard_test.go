package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
)

// chromiumPath is Debian's chromium; examples/scripts/ensure-chromium.sh
// installs it.
const chromiumPath = "/usr/bin/chromium"

// screenshotEnv names a file to save the dashboard's screenshot to, for
// docs/dashboard.png: PGSHARD_SCREENSHOT=$PWD/docs/dashboard.png go test -run Dashboard ./examples/server/app
const screenshotEnv = "PGSHARD_SCREENSHOT"

// The dashboard in a real headless Chromium: a fresh page shows the
// server's history at once, the keyspace ring, every node of every shard,
// and marks a replica whose replay is paused as lagging once the primary
// moves on (how soon is logged).
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no %s: run examples/scripts/ensure-chromium.sh (as root: apt-get install -y chromium) to run the dashboard test", chromiumPath)
	}
	in := start(t, nil, Options{Instance: "127.0.0.1:8080"})
	for i := range 20 { // some figures for the page
		u, _ := in.createUser(fmt.Sprintf("dash %d", i))
		for range 5 {
			in.do("GET", "/users/"+u.ID, nil)
		}
		in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "hello"})
	}

	// The server's history has a few samples before the page ever opens,
	// with reads of a cached user in each.
	seen, _ := in.createUser("dash reader")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		in.do("GET", "/users/"+seen.ID, nil)
		var doc shardsDoc
		in.do("GET", "/debug/shards.json", nil).json(t, &doc)
		if len(doc.History) >= 2 {
			break
		}
		require.False(t, time.Now().After(deadline), "the server kept no history within 20 s")
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1440, 900))...)
	defer cancelAlloc() // stops the browser process
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(in.http.URL+"/debug/shards")))
	wait, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	require.NoError(t, chromedp.Do(wait, chromedp.WaitReady(chromedp.CSS(`body[data-loaded="true"]`))), "the page never drew shards.json")

	// A fresh page shows the server's history at once: the instance's
	// charts and each replica's lag chart have points from its first draw.
	assert.GreaterOrEqual(t, eval[int](t, ctx, `Number(document.body.dataset.history)`), 2, "samples on the fresh page")
	for _, tile := range []string{"requests / s", "latency p50 / p99", "users cache hit ratio"} {
		assert.GreaterOrEqual(t, eval[int](t, ctx, fmt.Sprintf(`Number(document.querySelector('[data-tile=%q] canvas')?.dataset.points ?? -1)`, tile)), 2,
			"points in the %q chart of a fresh page", tile)
	}
	// The keyspace ring: one arc per shard, with its rows and share.
	assert.Equal(t, 2, eval[int](t, ctx, `document.querySelectorAll("svg[data-ring] [data-shard]").length`), "arcs on the ring")
	legend := eval[string](t, ctx, `document.getElementById("keyspace").innerText`)
	assert.Contains(t, legend, "50.0% of the keyspace")
	assert.Contains(t, legend, "% of the queries")

	// Every node of every shard is on the page.
	st := in.r.Stats()
	nodes := 0
	for _, sh := range st.Shards {
		for _, n := range sh.Replica.Nodes {
			nodes++
			role := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('tr.node[data-shard=%q][data-node=%q]')?.dataset.role ?? "missing"`, sh.Name, n.Addr))
			assert.Equal(t, n.Role.String(), role, "node %s of %s: role on the page", n.Addr, sh.Name)
		}
	}
	got := eval[int](t, ctx, `document.querySelectorAll("tr.node").length`)
	assert.Equal(t, nodes, got, "nodes on the page")
	assert.Equal(t, 4, nodes, "nodes in the router's stats (2 shards x 2)")

	// Pause shard0's replica and keep writing on its primary.
	sh := cluster.Shards()[0]
	rep := sh.Replicas[0]
	var addr string
	for _, n := range st.Shards[0].Replica.Nodes {
		if n.Role.String() == "replica" {
			addr = n.Addr
		}
	}
	require.True(t, addr != "" && eqPort(addr, rep.Port()), "shard0's replica %s is not node %s", addr, rep)
	bg := context.Background()
	require.NoError(t, rep.PauseReplay(bg))
	t.Cleanup(func() {
		assert.NoError(t, rep.ResumeReplay(bg))
		cctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		assert.NoError(t, rep.WaitCaughtUp(cctx, sh.Primary))
	})
	conn, err := pgx.Connect(bg, sh.Primary.DSN())
	require.NoError(t, err)
	defer conn.Close(bg)
	_, err = conn.Exec(bg, "CREATE TABLE IF NOT EXISTS dashboard_ticks (at timestamptz)")
	require.NoError(t, err)
	stopWrites := make(chan struct{})
	writesDone := make(chan struct{})
	go func() {
		defer close(writesDone)
		for {
			select {
			case <-stopWrites:
				return
			case <-time.After(20 * time.Millisecond):
				conn.Exec(bg, "INSERT INTO dashboard_ticks VALUES (now())")
			}
		}
	}()
	defer func() { close(stopWrites); <-writesDone }()

	paused := time.Now()
	state := ""
	for time.Since(paused) < 15*time.Second {
		state = eval[string](t, ctx, fmt.Sprintf(`document.querySelector('tr.node[data-node=%q]')?.dataset.state ?? "missing"`, addr))
		if state == "lagging" {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	took := time.Since(paused)
	require.Equal(t, "lagging", state, "the paused replica on the page after %v", took)
	t.Logf("the page marked the paused replica lagging after %v", took.Round(time.Millisecond))

	assert.False(t, eval[bool](t, ctx, `document.getElementById("banner").classList.contains("show")`),
		"the page shows an error: %s", eval[string](t, ctx, `document.getElementById("banner").textContent`))
	if path := os.Getenv(screenshotEnv); path != "" {
		time.Sleep(12 * time.Second) // some history in the charts, row counts
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot saved to %s", path)
	}
	want(t, "server still healthy", in.do("GET", "/healthz", nil), http.StatusOK)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[T](js))
	require.NoErrorf(t, err, "evaluate %s", js)
	return v
}

// eqPort reports whether a node address, host:port/database, has port.
func eqPort(addr string, port int) bool {
	hostPort, _, _ := strings.Cut(addr, "/")
	_, p, err := net.SplitHostPort(hostPort)
	return err == nil && p == strconv.Itoa(port)
}
