package app

import (
	"log/slog"
	"net/http"
	"time"
)

// newHTTPServer bounds every phase of a request, so that a client that is
// slow on purpose (slowloris: headers a byte at a time; a body that never
// ends) holds a connection for seconds, not for ever.
func newHTTPServer(h http.Handler, f Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: f.ReadHeaderTimeout,
		ReadTimeout:       max(15*time.Second, f.ReadHeaderTimeout),
		WriteTimeout:      max(30*time.Second, 2*f.RequestTimeout),
		IdleTimeout:       f.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
