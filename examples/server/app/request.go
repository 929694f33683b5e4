package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Request limits.
const (
	maxBody     = 64 << 10
	maxName     = 100  // characters
	maxPostBody = 5000 // characters
	defaultPage = 20
	maxPage     = 100
)

// httpError is a failure with the status and message the client gets.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

var errNotFound = &httpError{http.StatusNotFound, "not found"}

// readJSON reads a JSON object of at most maxBody bytes into dst, a pointer
// to a struct of pointer fields so that a missing field stays nil. It
// refuses bodies that are too large (413), not valid UTF-8, not JSON, not
// one object, with unknown fields or with fields of the wrong type (400),
// naming what is wrong. The Content-Type is not checked: curl -d sends its
// form type, and the body is JSON or refused either way.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if r.ContentLength > maxBody {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body: at most %d bytes", maxBody)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body: at most %d bytes", maxBody)}
		}
		return badRequest("body: %v", err)
	}
	if !utf8.Valid(body) {
		return badRequest("body: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest("body: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("body: want one JSON object, found more after it")
	}
	return nil
}

// jsonProblem says what is wrong with a body in words a client can act on.
func jsonProblem(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return fmt.Sprintf("want a JSON object, got %s", te.Value)
		}
		return fmt.Sprintf("%s: want a %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) {
		return "empty: want a JSON object"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed JSON: unexpected end"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "malformed JSON"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	}
	return goKind
}

// text checks a required string field: present, 1 to max characters,
// not blank, and without NUL (which PostgreSQL text cannot hold).
func text(field string, v *string, max int) (string, error) {
	switch {
	case v == nil:
		return "", badRequest("%s: required", field)
	case strings.TrimSpace(*v) == "":
		return "", badRequest("%s: must not be empty", field)
	case strings.ContainsRune(*v, 0):
		return "", badRequest("%s: must not contain NUL characters", field)
	}
	if n := utf8.RuneCountInString(*v); n > max {
		return "", badRequest("%s: %d characters, at most %d", field, n, max)
	}
	return *v, nil
}

// parseID reads a positive 64-bit decimal ID in canonical form (no sign,
// no leading zeros), as IDs travel in URLs and in JSON strings.
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, badRequest("%s: %.40q is not an ID (want a positive 64-bit decimal integer)", what, s)
	}
	return id, nil
}

// pageLimit reads ?limit=N, 1 to maxPage, defaultPage when absent.
func pageLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultPage, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		return 0, badRequest("limit: %.20q: want a whole number from 1 to %d", s, maxPage)
	}
	return n, nil
}
