package app

import (
	"context"
	"sync"
	"time"

	"github.com/pgshard/pgshard/reshard"
)

// reshardDoc is one resharding workflow on the dashboard.
type reshardDoc struct {
	Name            string           `json:"name"`
	Phase           string           `json:"phase"`
	Source          string           `json:"source"` // shard (range)
	Targets         []string         `json:"targets"`
	Copied          map[string]int64 `json:"copied,omitempty"`
	LagBytes        int64            `json:"lag_bytes"`
	LagSeconds      float64          `json:"lag_seconds"`
	SwitchedVersion int64            `json:"switched_version,omitempty"`
	Warnings        []string         `json:"warnings,omitempty"`
}

// reshardCache keeps the workflows' status for a few seconds: Status
// queries the sources and targets, and every open dashboard asks each
// second. It is safe for concurrent use.
type reshardCache struct {
	mu   sync.Mutex
	at   time.Time
	docs []reshardDoc
}

const reshardEvery = 2 * time.Second

// reshardDocs returns the store's workflows, newest status at most
// reshardEvery old; none without a store.
func (s *Server) reshardDocs(ctx context.Context) []reshardDoc {
	if s.opts.Store == nil {
		return []reshardDoc{}
	}
	c := &s.reshard
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < reshardEvery && c.docs != nil {
		return c.docs
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m := reshard.New(s.opts.Store, reshard.Options{Lookup: s.opts.StoreLookup})
	names, err := m.List(ctx)
	docs := []reshardDoc{}
	if err != nil {
		docs = append(docs, reshardDoc{Name: "?", Warnings: []string{s.red.String(err.Error())}})
	}
	for _, n := range names {
		st, err := m.Status(ctx, n)
		if err != nil {
			docs = append(docs, reshardDoc{Name: n, Warnings: []string{s.red.String(err.Error())}})
			continue
		}
		d := reshardDoc{Name: n, Phase: string(st.Phase), Source: st.Source.Shard + " (" + st.Source.Range + ")",
			Copied: st.Copied, LagBytes: st.LagBytes, LagSeconds: st.LagSeconds, SwitchedVersion: st.SwitchedVersion}
		for _, t := range st.Targets {
			d.Targets = append(d.Targets, t.Name+" ("+t.Range+")")
		}
		for _, w := range st.Warnings {
			d.Warnings = append(d.Warnings, s.red.String(w))
		}
		docs = append(docs, d)
	}
	c.at, c.docs = time.Now(), docs
	return docs
}
