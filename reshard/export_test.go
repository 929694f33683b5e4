package reshard

// SetCrash makes m "die" at the named points of its steps: fn's error
// stops the step there, as a crash of the process would.
func SetCrash(m *Manager, fn func(point string) error) { m.crash = fn }
