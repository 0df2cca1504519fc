// Package e2e will hold the end-to-end suite: the real control plane, cert-manager controller,
// operator and proxy processes, with real HTTP/HTTPS to the proxies (see the end-to-end issue).
package e2e
