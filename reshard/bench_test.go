package reshard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
)

// BenchmarkCopy measures the copy phase (rows per second, both targets
// together) against `pg_dump --data-only | psql` of the same tables into
// one target, alternating the two in the same run; copy-ratio is the
// copy's rate over pg_dump's.
func BenchmarkCopy(b *testing.B) {
	for _, users := range []int{50_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			e.seed(b, users)
			var rowsTotal int64
			src := connectDSN(b, e.source, e.db)
			require.NoError(b, src.QueryRow(ctx, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM posts) + (SELECT count(*) FROM countries)").Scan(&rowsTotal))
			pgDump, err := exec.LookPath("pg_dump")
			require.NoError(b, err)
			var copyTime, dumpTime time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := "bench" + strconv.Itoa(i)
				_, err := e.m.Create(ctx, e.spec(name))
				require.NoError(b, err)
				runCtx, kill := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- e.m.Run(runCtx, name) }()
				waitPhase(b, e, name, reshard.PhaseStreaming)
				kill()
				<-done
				st, err := e.m.Get(ctx, name)
				require.NoError(b, err)
				copyTime += st.CopyTime
				_, err = e.m.Cancel(ctx, name)
				require.NoError(b, err)

				began := time.Now()
				cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("%s --data-only -t users -t posts -t countries -d %q | psql -q -v ON_ERROR_STOP=1 -d %q >/dev/null",
					pgDump, expand(superDSN(e.source, e.db)), expand(superDSN(e.targets[0], e.db))))
				cmd.Stderr = os.Stderr
				require.NoError(b, cmd.Run())
				dumpTime += time.Since(began)
				_, err = connectDSN(b, e.targets[0], e.db).Exec(ctx, "TRUNCATE users, posts, countries")
				require.NoError(b, err)
			}
			copyRate := float64(rowsTotal) * float64(b.N) / copyTime.Seconds()
			dumpRate := float64(rowsTotal) * float64(b.N) / dumpTime.Seconds()
			b.ReportMetric(copyRate, "copy-rows/s")
			b.ReportMetric(dumpRate, "pgdump-rows/s")
			b.ReportMetric(copyRate/dumpRate, "copy-ratio")
		})
	}
}
