package proxy

// SetDirect switches the direct path (serveDirect) on or off, for tests that compare it with
// ReverseProxy; it returns the function restoring the previous setting.
func SetDirect(on bool) (restore func()) {
	old := !directDisabled.Load()
	directDisabled.Store(!on)
	return func() { directDisabled.Store(!old) }
}
