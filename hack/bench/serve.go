package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/portico-dev/portico/dataplane/runner"
)

// servePortico is `portico proxy` (the same runner.Run) with a CPU profile of its whole life and
// an allocation profile written at exit: the profile mode's proxy, so that cmd/portico needs no
// profiling endpoint.
func servePortico(args []string) int {
	fs := flag.NewFlagSet("serve-portico", flag.ExitOnError)
	var c runner.Config
	var cpuProfile, memProfile, logLevel string
	fs.StringVar(&c.Files, "files", "", "")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "")
	fs.StringVar(&c.HTTPSAddr, "https-addr", "", "")
	fs.StringVar(&c.AdminAddr, "admin-addr", "", "")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", time.Millisecond, "")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 2*time.Second, "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "")
	fs.StringVar(&memProfile, "memprofile", "", "")
	_ = fs.Parse(args)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := runner.Run(ctx, c)
	if memProfile != "" {
		if f, ferr := os.Create(memProfile); ferr == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serveReverseProxy is the baseline the issue quotes: a plain httputil.ReverseProxy (Rewrite with
// SetURL and SetXForwarded) on a default-like pooled transport, HTTP and HTTPS (h2 by ALPN), same
// Go, same pinning. The difference to Portico is what Portico's checks, routing and policies cost.
func serveReverseProxy(args []string) int {
	fs := flag.NewFlagSet("serve-reverseproxy", flag.ExitOnError)
	var httpAddr, httpsAddr, backendAddr, certPath, keyPath string
	fs.StringVar(&httpAddr, "http-addr", "", "")
	fs.StringVar(&httpsAddr, "https-addr", "", "")
	fs.StringVar(&backendAddr, "backend", "", "")
	fs.StringVar(&certPath, "cert", "", "")
	fs.StringVar(&keyPath, "key", "", "")
	_ = fs.Parse(args)
	target := &url.URL{Scheme: "http", Host: backendAddr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 100, IdleConnTimeout: 90 * time.Second,
			DisableCompression: true},
	}
	errs := make(chan error, 2)
	h := &http.Server{Addr: httpAddr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	s := &http.Server{Addr: httpsAddr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { errs <- h.ListenAndServe() }()
	go func() { errs <- s.ListenAndServeTLS(certPath, keyPath) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
		return 0
	case err := <-errs:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
}
