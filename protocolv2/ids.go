package protocolv2

import (
	"crypto/rand"
	"fmt"
	"os"
	"sync"
)

const hexDigits = "0123456789abcdef"

// NewID returns a random (version 4) UUID in its canonical 36-character
// form, as Python's str(uuid.uuid4()) — the format Celery uses for task ids
// and kombu for delivery tags.
func NewID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error on supported platforms
	// (it panics on failure since Go 1.24).
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexDigits[c>>4]
		out[j+1] = hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}

var (
	anonOnce sync.Once
	anonName string
)

// AnonNodename returns the node name Celery clients put in the origin
// header when they are not a worker: "gen<pid>@<hostname>"
// (celery/utils/nodenames.py: anon_nodename).
func AnonNodename() string {
	anonOnce.Do(func() {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		anonName = fmt.Sprintf("gen%d@%s", os.Getpid(), host)
	})
	return anonName
}
