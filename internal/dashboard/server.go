package dashboard

import (
	"bufio"
	"embed"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// static holds the page: index.html, app.js, style.css. Plain JavaScript and canvas; no build step.
//
//go:embed static
var static embed.FS

// keepAlive is how often an idle event stream gets a comment line, so proxies and the browser keep it open.
const keepAlive = 15 * time.Second

// ServeHTTP serves the dashboard:
//
//	GET /                 the page
//	GET /static/...       its script and style sheet
//	GET /events           the live updates, as Server-Sent Events (text/event-stream)
//	GET /frame/{stream}   the stream's latest thumbnail (image/jpeg), 404 when there is none
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.handler.ServeHTTP(w, r)
}

func (h *Hub) mux() *http.ServeMux {
	sub, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	mux.HandleFunc("GET /events", h.serveEvents)
	mux.HandleFunc("GET /frame/{stream}", h.serveFrame)
	return mux
}

func (h *Hub) serveFrame(w http.ResponseWriter, r *http.Request) {
	fr, ok := h.frm.get(r.PathValue("stream"))
	if !ok {
		http.Error(w, "no thumbnail of this stream (yet)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Seq", strconv.FormatUint(fr.seq, 10))
	w.Header().Set("Content-Length", strconv.Itoa(len(fr.jpeg)))
	w.Write(fr.jpeg)
}

// serveEvents streams updates to one browser. The connection is taken over from the HTTP server (when it
// allows that) so that its kernel send buffer can be bounded and every write has a deadline: a browser that
// stops reading fills that buffer, its writes time out after ClientTimeout, and it is disconnected; until
// then the hub drops its oldest queued updates.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	c := h.connect(r.Context())
	if c == nil {
		http.Error(w, "dashboard unavailable: too many clients, or shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.disconnect(c)
	const head = "Content-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n"
	var (
		out      io.Writer
		flush    func() error
		deadline func(time.Time) error
		closed   <-chan struct{} // closed when the browser went away
	)
	stuck := false // the browser stopped reading: discard what its socket still holds
	rc := http.NewResponseController(w)
	if conn, buf, err := rc.Hijack(); err == nil {
		tc, _ := conn.(*net.TCPConn)
		if tc != nil {
			tc.SetWriteBuffer(h.opts.SendBuffer)
		}
		defer func() {
			if stuck && tc != nil {
				// Without this the kernel would keep the unsent data, and the connection, until the
				// browser reads again: reset it instead.
				tc.SetLinger(0)
			}
			conn.Close()
		}()
		bw := bufio.NewWriterSize(conn, 32<<10)
		out, flush, deadline = bw, bw.Flush, conn.SetWriteDeadline
		deadline(time.Now().Add(h.opts.ClientTimeout))
		bw.WriteString("HTTP/1.1 200 OK\r\n" + head + "Connection: close\r\n\r\n")
		done := make(chan struct{}) // closed by the reader below when the connection ends
		closed = done
		go func() {
			// The browser sends nothing more; a read returns when it closes the connection.
			defer close(done)
			io.Copy(io.Discard, buf)
		}()
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		out, flush, deadline = w, rc.Flush, rc.SetWriteDeadline
		closed = r.Context().Done()
	}
	if _, err := io.WriteString(out, "retry: 2000\n\n"); err != nil {
		return
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		var b []byte
		select {
		case b = <-c.ch:
		case <-ping.C:
		case <-c.gone:
			stuck = true
			return
		case <-closed:
			return
		}
		deadline(time.Now().Add(h.opts.ClientTimeout))
		var err error
		if b == nil {
			_, err = io.WriteString(out, ": ping\n\n")
		} else {
			_, err = io.WriteString(out, "event: update\ndata: ")
			if err == nil {
				_, err = out.Write(b)
			}
			if err == nil {
				_, err = io.WriteString(out, "\n\n")
			}
		}
		if err == nil {
			err = flush()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				stuck = true
				h.kick.Add(1)
				h.opts.Log.Info("dashboard: disconnected a client that stopped reading", "remote", r.RemoteAddr, "timeout", h.opts.ClientTimeout)
			} else {
				h.opts.Log.Debug("dashboard client disconnected", "remote", r.RemoteAddr, "err", err)
			}
			return
		}
	}
}
