package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

const (
	ingressKind = "Ingress"
	// routePrefix starts the name of every TenantRoute generated from an Ingress, so that
	// generated routes never collide with hand-written ones that follow the usual naming.
	routePrefix = "ingress-"
	// maxObjectName is the longest DNS subdomain, the limit of a TenantRoute's name.
	maxObjectName = 253
	// maxLabelValue is the longest label value.
	maxLabelValue = 63
	// maxRuleName keeps rule names short in access logs and metrics.
	maxRuleName = 63
	// hashLength is the number of hex digits of the hash that keeps shortened names unique.
	hashLength = 10
)

// RouteName is the name of the first (usually only) TenantRoute of an Ingress: "ingress-<name>",
// shortened with a hash when longer than an object name may be.
func RouteName(ingressName string) string {
	return shorten(routePrefix+ingressName, maxObjectName)
}

// extraRouteName names the TenantRoute of a further hostname group: the first route's name and a
// label made of the group's first hostname ("wildcard" for "*", "catch-all" for no hostname), so
// that a name stays put when other hosts of the Ingress change.
func extraRouteName(ingressName, firstHost string) string {
	label := "catch-all"
	if firstHost != "" {
		label = strings.ReplaceAll(firstHost, "*", "wildcard")
	}
	return shorten(routePrefix+ingressName+"-"+label, maxObjectName)
}

// chunkRouteName names the further TenantRoutes an oversized group is split into: "<name>-2", "-3"...
func chunkRouteName(groupName string, chunk int) string {
	if chunk == 0 {
		return groupName
	}
	suffix := "-" + strconv.Itoa(chunk+1)
	if len(groupName)+len(suffix) <= maxObjectName {
		return groupName + suffix
	}
	return shorten(groupName+suffix, maxObjectName)
}

// labelValue fits a name into a label value: names of Ingresses and EdgeProxies may be DNS
// subdomains of up to 253 characters, label values only 63.
func labelValue(s string) string { return shorten(s, maxLabelValue) }

// shorten returns s if it fits in limit, else a prefix of s and a hash of the whole of s. The
// result starts and ends with an alphanumeric character when s does.
func shorten(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	keep := strings.TrimRight(s[:limit-hashLength-1], "-.")
	return keep + "-" + hashOf(s)
}

// hashOf is a short, stable digest of s.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLength]
}

// ruleNamer hands out rule names unique within a route: the base name, then "<base>-2", "-3"...
type ruleNamer map[string]bool

func (n ruleNamer) name(base string) string {
	base = shorten(base, maxRuleName-4)
	name := base
	for i := 2; n[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	n[name] = true
	return name
}
