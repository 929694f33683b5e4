package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

// chaosClient sends a scenario's own requests and records each answer in
// the timeline, as loadgen's Observe does for its own. It is safe for
// concurrent use.
type chaosClient struct {
	e    *chaosEnv
	src  string
	http *http.Client
}

func (e *chaosEnv) client(src string) *chaosClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &chaosClient{e: e, src: src, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// send makes one request (body: nil, or a value sent as JSON) and returns
// the answer; status 0 is a transport error. It runs to completion even
// when the scenario ends mid-request, so that every outcome is known.
func (c *chaosClient) send(in *chaosInstance, method, route, path string, body any) (int, http.Header, []byte) {
	return c.sendToken(in, method, route, path, body, "")
}

// sendToken is send with a consistency token.
func (c *chaosClient) sendToken(in *chaosInstance, method, route, path string, body any, token string) (int, http.Header, []byte) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, in.url+path, rd)
	if err != nil {
		panic(err)
	}
	if token != "" {
		req.Header.Set("X-Consistency-Token", token)
	}
	start := time.Now()
	res, err := c.http.Do(req)
	var (
		status int
		hdr    http.Header
		b      []byte
	)
	if err == nil {
		b, err = io.ReadAll(res.Body)
		res.Body.Close()
		status, hdr = res.StatusCode, res.Header
	}
	if err != nil {
		status = 0
	}
	c.e.tl.add(c.src, loadgen.Observation{Route: route, Method: method, Path: path, Target: in.url, Start: start,
		Latency: time.Since(start), Status: status, Header: hdr, Body: b, Err: err})
	return status, hdr, b
}

// bystanders start n clients that only read and carry no consistency
// token, as a client that never writes: /users/{id}/posts of users created
// in the scenario and, one time in five, /posts/recent. Their reads may go
// to any replica within the lag bound, which is what the lag checks need
// (loadgen's clients, with their tokens, mostly need the newest data). stop
// ends them and waits.
func (e *chaosEnv) bystanders(n int, targets ...*chaosInstance) (stop func()) {
	c := e.client("bystander")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for k := 0; ; k++ {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
				}
				in := targets[k%len(targets)]
				if id, ok := e.tl.someUser(rng); ok && k%5 != 0 {
					c.send(in, "GET", "GET /users/{id}/posts", fmt.Sprintf("/users/%d/posts?limit=5", id), nil)
				} else {
					c.send(in, "GET", "GET /posts/recent", "/posts/recent?limit=5", nil)
				}
			}
		})
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// nameIn reads the name of a user's JSON answer.
func nameIn(body []byte) (string, bool) {
	var u struct {
		Name *string `json:"name"`
	}
	if json.Unmarshal(body, &u) != nil || u.Name == nil {
		return "", false
	}
	return *u.Name, true
}
