// Command bare is the baseline of the server benchmark: a plain net/http
// handler that answers every GET /users/{id} with the same bytes and
// headers as a cached answer of examples/server, fetched once at start.
// The difference between the two is the cost of pgshard's routing, cache
// and the server's middleware.
//
//	go run ./examples/bare -copy http://127.0.0.1:8080/users/123 -listen 127.0.0.1:8090
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	copyURL := flag.String("copy", "", "`URL` of a GET /users/{id} of examples/server whose answer to serve")
	listen := flag.String("listen", "127.0.0.1:8090", "`address` to serve on")
	flag.Parse()
	if *copyURL == "" {
		fmt.Fprintln(os.Stderr, "bare: -copy URL is required")
		os.Exit(2)
	}
	res, err := http.Get(*copyURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "bare: GET %s: status %d, %v\n", *copyURL, res.StatusCode, err)
		os.Exit(1)
	}
	header := res.Header.Clone()
	header.Del("Date")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.Write(body)
	})
	fmt.Printf("bare: serving %d bytes on http://%s/users/{id}\n", len(body), *listen)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}
