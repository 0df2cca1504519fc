package routing

import (
	"errors"
	"time"
)

var errDuration = errors.New(`must be a Gateway API duration: 1 to 4 parts of up to 5 digits with unit h, m, s or ms, such as "10s" or "1m500ms"`)

// parseDuration parses the GEP-2257 duration format, ^([0-9]{1,5}(h|m|s|ms)){1,4}$, a strict subset
// of time.ParseDuration. (gateway-api's own parser lives in a main package and cannot be imported.)
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errDuration
	}
	var total time.Duration
	parts := 0
	for i := 0; i < len(s); {
		start := i
		var v int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			v = v*10 + int64(s[i]-'0')
			i++
		}
		if n := i - start; n == 0 || n > 5 {
			return 0, errDuration
		}
		var unit time.Duration
		switch {
		case i+1 < len(s) && s[i] == 'm' && s[i+1] == 's':
			unit, i = time.Millisecond, i+2
		case i < len(s) && s[i] == 'h':
			unit, i = time.Hour, i+1
		case i < len(s) && s[i] == 'm':
			unit, i = time.Minute, i+1
		case i < len(s) && s[i] == 's':
			unit, i = time.Second, i+1
		default:
			return 0, errDuration
		}
		if parts++; parts > 4 {
			return 0, errDuration
		}
		total += time.Duration(v) * unit // at most 4 × 99999h: no overflow
	}
	return total, nil
}
