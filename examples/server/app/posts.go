package app

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/router"
)

type post struct {
	UserID    int64
	ID        int64
	Body      string
	CreatedAt time.Time
}

type postJSON struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

func (p post) json() postJSON {
	return postJSON{ID: strconv.FormatInt(p.ID, 10), UserID: strconv.FormatInt(p.UserID, 10), Body: p.Body, CreatedAt: p.CreatedAt.UTC()}
}

type postsJSON struct {
	Posts []postJSON `json:"posts"`
}

func postList(ps []post) postsJSON {
	out := postsJSON{Posts: make([]postJSON, len(ps))}
	for i, p := range ps {
		out.Posts[i] = p.json()
	}
	return out
}

// POST /users/{id}/posts {"body"} -> 201 post; 404 if the user does not exist.
func (s *Server) createPost(w http.ResponseWriter, r *http.Request) error {
	uid, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	var in struct {
		Body *string `json:"body"`
	}
	if err := readJSON(w, r, &in); err != nil {
		return err
	}
	body, err := text("body", in.Body, maxPostBody)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	pid, err := s.ids.Next()
	if err != nil {
		return noID(err)
	}
	p := post{UserID: uid, ID: pid, Body: body, CreatedAt: s.now()}
	t := s.r.User(uid)
	notFound := &httpError{http.StatusNotFound, "user " + strconv.FormatInt(uid, 10) + " not found"}
	// One statement, so one round trip without a key: the user's posts
	// live on the user's shard, and the insert happens only if the user is
	// there.
	const insert = `INSERT INTO posts (user_id, id, body, created_at)
		 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)`
	created := func() {
		w.Header().Set("Location", "/users/"+strconv.FormatInt(uid, 10)+"/posts")
		s.userHeaders(w, t, "primary")
	}
	if key != "" {
		ans, replayed, err := once(r.Context(), t, "POST /users/"+strconv.FormatInt(uid, 10)+"/posts", key, []byte(body),
			func(tx pgx.Tx) (stored, error) {
				tag, err := tx.Exec(r.Context(), insert, p.UserID, p.ID, p.Body, p.CreatedAt)
				if err == nil && tag.RowsAffected() == 0 {
					err = notFound
				}
				b, _ := json.Marshal(p.json())
				return stored{http.StatusCreated, append(b, '\n')}, err
			})
		if err != nil {
			return err
		}
		created()
		if replayed {
			replay(w, r, ans)
			return nil
		}
		setToken(w, r)
		writeBody(w, ans.status, ans.body)
		return nil
	}
	tag, err := t.Exec(r.Context(), insert, p.UserID, p.ID, p.Body, p.CreatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound
	}
	created()
	reply(w, r, http.StatusCreated, p.json())
	return nil
}

func scanPost(row pgx.CollectableRow) (post, error) {
	var p post
	err := row.Scan(&p.UserID, &p.ID, &p.Body, &p.CreatedAt)
	return p, err
}

// GET /users/{id}/posts?limit=N&before=ID -> 200 {"posts"}, newest first.
// An unknown user has no posts: the answer is an empty list, not a 404,
// which would cost a second query.
func (s *Server) userPosts(w http.ResponseWriter, r *http.Request) error {
	uid, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	before := int64(1<<63 - 1)
	if b := r.URL.Query().Get("before"); b != "" {
		if before, err = parseID("before", b); err != nil {
			return err
		}
	}
	info := &router.ReadInfo{}
	ctx := router.WithReadInfo(r.Context(), info)
	t := s.r.User(uid)
	ps, err := router.Collect(ctx, t,
		"SELECT user_id, id, body, created_at FROM posts WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
		[]any{uid, before, limit}, scanPost)
	if err != nil {
		return err
	}
	s.userHeaders(w, t, info.ServedBy())
	reply(w, r, http.StatusOK, postList(ps))
	return nil
}

// GET /posts/recent?limit=N -> 200 {"posts"}: the newest N across every
// shard. Each shard returns its own newest N and Gather merges them. IDs
// are time-ordered, so ordering by ID is ordering by creation.
func (s *Server) recentPosts(w http.ResponseWriter, r *http.Request) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	ps, err := router.Gather(r.Context(), s.r,
		"SELECT user_id, id, body, created_at FROM posts ORDER BY id DESC LIMIT $1", []any{limit},
		scanPost, router.GatherOptions[post]{Compare: func(a, b post) int { return cmp.Compare(b.ID, a.ID) }, Limit: limit})
	if err != nil {
		return err // names every failed shard; failure() sees each cause
	}
	reply(w, r, http.StatusOK, postList(ps))
	return nil
}
