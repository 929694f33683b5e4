package loadgen

import (
	"net/http"
	"time"
)

// Observation is one request of the load as its virtual client saw it,
// handed to Options.Observe as soon as the answer has been read. It is a
// plain value; Header and Body belong to the receiver, which may keep them.
type Observation struct {
	Client  int           // the virtual client, 0 to Concurrency-1
	Route   string        // the route's pattern, such as "PUT /users/{id}"
	Method  string        // GET, POST, PUT
	Path    string        // the request's path and query, such as /users/42
	Target  string        // the base URL it was sent to
	Start   time.Time     // when the request was sent
	Latency time.Duration // until its answer was read
	Status  int           // the HTTP status; 0 for a transport error
	Header  http.Header   // the answer's header; nil on a transport error
	Body    []byte        // the answer's body
	Err     error         // the transport error, if any
}

// observe hands one request to Options.Observe, if set.
func (c *client) observe(rt route, req *http.Request, target string, start time.Time, lat time.Duration, hdr http.Header, r response) {
	f := c.run.opts.Observe
	if f == nil {
		return
	}
	f(Observation{
		Client: c.id, Route: routeNames[rt], Method: req.Method, Path: req.URL.RequestURI(), Target: target,
		Start: start, Latency: lat, Status: r.status, Header: hdr, Body: r.body, Err: r.err,
	})
}
