//go:build race

package adversarial

// raceEnabled: the race detector's shadow memory multiplies the resident set (memoryWatch).
const raceEnabled = true
