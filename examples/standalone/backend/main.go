// Command backend is the tiny echo server of the standalone example: it answers every request
// with what it received, so you can see what the proxy forwarded (path after rewrites, headers
// after filters, X-Forwarded-*).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	name := flag.String("name", "hello", "name printed in every answer")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "backend %s got %s %s (Host %s)\n", *name, r.Method, r.RequestURI, r.Host)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range r.Header[k] {
				fmt.Fprintf(w, "  %s: %s\n", k, v)
			}
		}
		if len(body) > 0 {
			fmt.Fprintf(w, "body (%d bytes): %s\n", len(body), body)
		}
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("echo backend %q listening on %s", *name, *addr)
	log.Fatal(srv.ListenAndServe())
}
