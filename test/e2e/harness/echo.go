package harness

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

// EchoImage is the test backend image: containers of it run the echo server built into the
// program using the harness (its own executable, see RunRoleIfRequested).
const EchoImage = "e2e.portico.dev/echo"

// AgnhostImage is the Kubernetes e2e image; its netexec HTTP server is played by the echo server
// (examples/quickstart uses it, so the same manifests work on a real cluster).
const AgnhostImage = "registry.k8s.io/e2e-test-images/agnhost"

const roleEnv = "PORTICO_HARNESS_ROLE"

// EchoImageSpec runs EchoImage containers as this very executable in the echo role.
func EchoImageSpec() (Image, error) {
	self, err := os.Executable()
	if err != nil {
		return Image{}, err
	}
	return Image{Entrypoint: []string{self}, Env: []string{roleEnv + "=echo"}}, nil
}

// RunRoleIfRequested must be called first in main (or TestMain) of every program using the harness:
// when the process was started as a pod of EchoImage it serves and never returns.
func RunRoleIfRequested() {
	if os.Getenv(roleEnv) != "echo" {
		return
	}
	if err := runEcho(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// EchoResponse is what the echo backend answers to every request.
type EchoResponse struct {
	Pod       string              `json:"pod"`
	Namespace string              `json:"namespace"`
	Method    string              `json:"method"`
	Host      string              `json:"host"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Headers   map[string][]string `json:"headers"`
}

// runEcho serves HTTP on --listen (default :8080): every request gets an EchoResponse; the query
// parameter delay=DURATION delays the answer, status=CODE sets its status. /healthz answers 200;
// /ws is a WebSocket that echoes every message; /sse streams a server-sent event every 100 ms.
func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "listen address")
	httpPort := fs.Int("http-port", 0, "agnhost netexec compatibility: listen on :PORT")
	if len(args) > 0 && args[0] == "netexec" { // registry.k8s.io/e2e-test-images/agnhost netexec
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *httpPort != 0 {
		*listen = fmt.Sprintf(":%d", *httpPort)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/ws", websocket.Server{Handler: func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }}) // echoes every message
	mux.HandleFunc("/sse", serverSentEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if d, err := time.ParseDuration(q.Get("delay")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		code := http.StatusOK
		if _, err := fmt.Sscan(q.Get("status"), &code); err != nil {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Pod", os.Getenv("POD_NAME"))
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(EchoResponse{Pod: os.Getenv("POD_NAME"), Namespace: os.Getenv("POD_NAMESPACE"),
			Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: r.Header})
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "echo %s listening on %s\n", os.Getenv("POD_NAME"), *listen)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// serverSentEvents streams "data: N" every 100 ms until the client goes away: a long-lived
// response, over HTTP/1.1 or as one HTTP/2 stream.
func serverSentEvents(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Echo-Pod", os.Getenv("POD_NAME"))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
