package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/prom"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// Options tune a server; the zero value works.
type Options struct {
	// NodeID pins this instance's Snowflake node, 0 to 1023, with no
	// lease: the operator keeps instances apart. Negative (the default)
	// leases a free node number from PostgreSQL (package idgen), so that
	// no two running instances ever share one.
	NodeID int64
	// Rate is each client IP's sustained request rate, a second; 0 means
	// no limit. Burst is how many it may make at once; 0 means max(1, Rate).
	Rate  float64
	Burst int
	// TrustedProxies are the addresses whose X-Forwarded-For the rate limit
	// believes, such as a load balancer's; nil means none: the limit counts
	// each peer address.
	TrustedProxies TrustedProxies
	// RequestTimeout bounds each request's database work. Default 5 s.
	RequestTimeout time.Duration
	// Cache sizes the users cache. Zero Capacity means 100,000 entries.
	Cache CacheTopology
	// Logger receives request failures and panics. Nil is silent.
	Logger *slog.Logger
	// Redactor scrubs the passwords of the topology from what the server shows.
	Redactor Redactor
	// Instance names this server on the dashboard (its listen address).
	Instance string
	// MaxLag is the replica lag bound, shown on the dashboard.
	MaxLag time.Duration
	// Now is the clock of IDs and the rate limit; nil means time.Now.
	Now func() time.Time
	// Tracer, if set, is the Tracer given to the router (in
	// router.Config.Tracer): /metrics then carries its counts, and the
	// dashboard fallbacks by reason and each node's last error. Nil leaves
	// them out.
	Tracer *Tracer
	// IdempotencyTTL is how long an Idempotency-Key is honoured: at least
	// this long, and a cleanup deletes it within the next
	// min(1 h, TTL/4). Zero means 24 h.
	IdempotencyTTL time.Duration
	// Store, if set, is the topology store the router follows: the
	// dashboard then shows its resharding workflows (package reshard),
	// their servers' DSNs expanded with StoreLookup (nil: the
	// environment).
	Store       *topology.Store
	StoreLookup func(string) (string, bool)
}

// Server is the HTTP API over a router. It is safe for concurrent use; it
// does not own the router.
type Server struct {
	r       *router.Router
	users   *router.Cache[*user]
	ids     idSource
	emails  *lookup.Lookup
	release func() // gives the ID lease back
	limit   *limiter
	metrics *httpMetrics
	reg     *prometheus.Registry
	tracer  *Tracer
	latency latencyWindow // for the history's percentiles
	hist    history
	log     *slog.Logger
	red     Redactor
	mux     *http.ServeMux
	timeout time.Duration
	opts    Options
	started time.Time
	reshard reshardCache
	drewID  func(id int64) // tests: called after a keyed create draws its ID, before it writes it

	schemaReady atomic.Bool // the schema is on every shard
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// New applies the schema on every shard and returns the server.
func New(ctx context.Context, r *router.Router, o Options) (*Server, error) {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Cache.Capacity <= 0 {
		o.Cache.Capacity = 100_000
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = 24 * time.Hour
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	emails, err := lookup.New(r, lookup.Config{Table: "user_emails",
		OwnerSQL: "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)"})
	if err != nil {
		return nil, err
	}
	schemaErr := applySchema(ctx, r)
	if schemaErr != nil && !unavailableOnly(schemaErr, len(r.Shards())) {
		return nil, fmt.Errorf("apply schema: %s", o.Redactor.String(schemaErr.Error()))
	}
	ids, release, err := newIDs(ctx, r, o.NodeID, o)
	if err != nil {
		return nil, fmt.Errorf("ID generator: %s", o.Redactor.String(err.Error()))
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{
		r:       r,
		users:   router.NewCache[*user](r, "users", cache.Options{Capacity: o.Cache.Capacity, TTL: o.Cache.TTL, NegativeTTL: o.Cache.NegativeTTL}),
		ids:     ids,
		emails:  emails,
		release: release,
		limit:   newLimiter(o.Rate, o.Burst, o.Now),
		metrics: newHTTPMetrics(),
		log:     log,
		red:     o.Redactor,
		mux:     http.NewServeMux(),
		timeout: o.RequestTimeout,
		opts:    o,
		started: time.Now(),
		cancel:  cancel,
	}
	s.tracer = o.Tracer
	var pt *prom.Tracer
	if o.Tracer != nil {
		pt = o.Tracer.Tracer
	}
	s.reg = newRegistry(r, s.metrics, pt, o.Redactor)
	s.routes()
	s.wg.Go(func() { s.sampleLoop(bg) })
	s.wg.Go(func() { s.expireLoop(bg, o.IdempotencyTTL, max(time.Second, min(time.Hour, o.IdempotencyTTL/4))) })
	if schemaErr == nil {
		s.schemaReady.Store(true)
	} else {
		log.Warn("schema not applied on every shard; retrying in the background", "err", o.Redactor.String(schemaErr.Error()))
		s.wg.Go(func() { s.applySchemaLater(bg, 2*time.Second) })
	}
	return s, nil
}

// Registry is the registry that /metrics serves: a program that runs the
// server may register its own collectors in it.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Close stops the server's background work; it does not close the router.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
	s.release()
}

func (s *Server) routes() {
	m := s.mux
	m.Handle("POST /users", s.api(true, s.createUser))
	m.Handle("GET /users", s.api(false, s.userByEmail))
	m.Handle("GET /users/{id}", s.api(false, s.getUser))
	m.Handle("PUT /users/{id}", s.api(true, s.updateUser))
	m.Handle("PUT /users/{id}/email", s.api(true, s.changeEmail))
	m.Handle("DELETE /users/{id}/email", s.api(true, s.deleteEmail))
	m.Handle("POST /users/{id}/posts", s.api(true, s.createPost))
	m.Handle("GET /users/{id}/posts", s.api(false, s.userPosts))
	m.Handle("GET /posts/recent", s.api(false, s.recentPosts))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", metricsHandler(s.reg))
	m.HandleFunc("GET /debug/shards", serveDashboard)
	m.HandleFunc("GET /debug/shards.json", s.shardsJSON)
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/debug/shards", http.StatusFound)
	})
}

// ServeHTTP records each request's status and latency, turns a panic into
// a 500, and answers unknown routes and methods in JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, req: r}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.metrics.panics.Inc()
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !sw.wroteHeader {
				writeJSON(sw, http.StatusInternalServerError, errorBody{"internal error"})
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		s.metrics.observe(route, sw.status(), d)
		s.latency.observe(d)
	}()
	s.mux.ServeHTTP(sw, r)
}

// api wraps a JSON handler: rate limit, consistency token, request
// timeout, and the mapping of its error to a status. Writes always run in
// a session so that their response carries a token.
func (s *Server) api(write bool, f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.limit.allow(s.opts.TrustedProxies.clientIP(r)); !ok {
			s.metrics.rateLimited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			// A client this fast gets no keep-alive: its connection is
			// not left holding a descriptor.
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusTooManyRequests, errorBody{"rate limit exceeded; retry after the Retry-After seconds"})
			return
		}
		ctx := r.Context()
		if tok := r.Header.Get("X-Consistency-Token"); tok != "" {
			sess, err := router.ParseSession(tok)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody{"X-Consistency-Token: " + err.Error()})
				return
			}
			ctx = router.WithSession(ctx, sess)
		} else if write {
			ctx = router.WithSession(ctx, router.NewSession())
		}
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		if err := f(w, r.WithContext(ctx)); err != nil {
			status, msg := s.failure(err)
			if status >= 500 {
				s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", msg)
			}
			writeJSON(w, status, errorBody{msg})
		}
	})
}

// reply writes a JSON answer with the session's token, if any.
func reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	setToken(w, r)
	writeJSON(w, status, v)
}

func setToken(w http.ResponseWriter, r *http.Request) {
	if sess := router.SessionFrom(r.Context()); sess != nil {
		w.Header().Set("X-Consistency-Token", sess.Token())
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error: cannot encode the response"}`)
	}
	writeBody(w, status, append(b, '\n'))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// statusWriter remembers the status, and rewrites the mux's own plain-text
// errors (no route matched: no pattern), such as 404 and 405, as JSON.
type statusWriter struct {
	http.ResponseWriter
	req         *http.Request
	code        int
	wroteHeader bool
	swallow     bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader, w.code = true, code
	if w.req.Pattern == "" && code >= 400 {
		w.swallow = true
		var msg string
		switch code {
		case http.StatusNotFound:
			msg = "no such route: " + w.req.Method + " " + w.req.URL.Path
		case http.StatusMethodNotAllowed:
			msg = "method " + w.req.Method + " not allowed on " + w.req.URL.Path + "; allowed: " + w.Header().Get("Allow")
		default: // such as the mux's 400 for GET *
			msg = fmt.Sprintf("%s: %s %.200s", strings.ToLower(http.StatusText(code)), w.req.Method, w.req.RequestURI)
		}
		w.Header().Del("X-Content-Type-Options")
		b, _ := json.Marshal(errorBody{msg})
		writeBody(w.ResponseWriter, code, append(b, '\n'))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.code
}
