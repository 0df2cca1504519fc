package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/diagnose"
)

type explainFlags struct {
	method, files, edgeProxy, output, sni, clientIP string
	headers                                         []string
	bodyBytes                                       int64
}

func newExplainCommand() *cobra.Command {
	f := &explainFlags{}
	cmd := &cobra.Command{
		Use:   "explain URL",
		Short: "Explain how a request would be routed",
		Long: `Explain which EdgeProxy, TenantRoute and rule would serve a URL and why: host match (exact,
wildcard, catch-all), path match type and length, precedence over the other candidates, the backend
endpoints it would reach; or why the proxy would answer 404, 421, 403, 413 or 503 itself. The
answer comes from the proxy's own routing table (routing.Build and Lookup), built from the cluster's
admitted TenantRoutes, or with --files from a directory as 'portico proxy --files' reads it.`,
		Example: `  portico explain https://shop.example.com/api/v1/items
  portico explain http://shop.example.com/upload --method POST --header Content-Length=5000000
  portico explain --files ./routes http://localhost/api`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runExplain(cmd, f, args[0]) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.method, "method", "GET", "request method")
	fs.StringArrayVar(&f.headers, "header", nil, "request header k=v (repeatable)")
	fs.StringVar(&f.files, "files", "", "explain against a files-mode directory instead of the cluster")
	fs.StringVar(&f.edgeProxy, "edgeproxy", "", "EdgeProxy to explain against (default: the one allowing the host)")
	fs.StringVar(&f.sni, "sni", "", "TLS server name for https URLs (default: the URL's host)")
	fs.StringVar(&f.clientIP, "client-ip", "", "client address, checked against the route's source ranges")
	fs.Int64Var(&f.bodyBytes, "body-bytes", 0, "request body size, checked against the route's limit")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	addKubeconfigFlag(cmd)
	return cmd
}

func runExplain(cmd *cobra.Command, f *explainFlags, rawURL string) error {
	req := diagnose.Request{URL: rawURL, Method: f.method, Header: http.Header{}, SNI: f.sni, ClientIP: f.clientIP, BodyBytes: f.bodyBytes}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			k, v, ok = strings.Cut(h, ":")
		}
		if !ok {
			return fmt.Errorf("--header %q: want name=value", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var t diagnose.Table
	var err error
	if f.files != "" {
		t, err = diagnose.FromFiles(f.files, time.Now())
	} else {
		u, perr := url.Parse(rawURL)
		if perr != nil {
			return perr
		}
		c, cerr := kubeClient()
		if cerr != nil {
			return cerr
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
		defer cancel()
		t, err = diagnose.FromCluster(ctx, c, strings.ToLower(u.Hostname()), f.edgeProxy, time.Now())
	}
	if err != nil {
		return err
	}
	ex, err := diagnose.Explain(t, req)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return ex.WriteJSON(cmd.OutOrStdout())
	}
	return ex.WriteText(cmd.OutOrStdout())
}
