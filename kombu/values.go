package kombu

import (
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Naive is the location given to naive (zone-less) Python datetimes when they
// are decoded. It is a fixed zone at UTC+0, so wall-clock fields read back
// unchanged, and the encoders recognise it (by pointer) and write such values
// back without a UTC offset.
var Naive = time.FixedZone("naive", 0)

// Date is a calendar date, the Go form of Python's datetime.date.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// String returns the date as Python's date.isoformat does: YYYY-MM-DD.
func (d Date) String() string {
	return string(appendDate(nil, d.Year, int(d.Month), d.Day))
}

// TimeOfDay is a wall-clock time, the Go form of Python's datetime.time.
// Aware times (with a UTC offset) set Aware and Offset.
type TimeOfDay struct {
	Hour, Minute, Second, Nanosecond int
	// Aware is true when the time carries a UTC offset.
	Aware bool
	// Offset is the UTC offset in seconds east of UTC; meaningful only when
	// Aware is true.
	Offset int
}

// String returns the time as Python's time.isoformat does, e.g. "03:04:05",
// "03:04:05.600000" or "03:04:05+02:00".
func (t TimeOfDay) String() string {
	return string(appendTimeOfDay(nil, t))
}

// Decimal is a Python decimal.Decimal kept as its exact decimal text
// (for example "1.10"); no arithmetic is offered, precision is never lost.
type Decimal string

// UUID is a Python uuid.UUID: 16 raw bytes.
type UUID [16]byte

// String returns the canonical lowercase dashed form
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).
func (u UUID) String() string {
	var b [36]byte
	encodeUUIDDashed(b[:], u)
	return string(b[:])
}

// Hex returns the 32 lowercase hex digits without dashes (Python's UUID.hex).
func (u UUID) Hex() string {
	return hex.EncodeToString(u[:])
}

func encodeUUIDDashed(dst []byte, u UUID) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:36], u[10:16])
}

// ParseUUID parses a UUID the way Python's uuid.UUID(hex=...) does: optional
// "urn:" / "uuid:" prefixes and braces are stripped, dashes are ignored, and
// exactly 32 hex digits must remain.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(s, "urn:", "")
	h = strings.ReplaceAll(h, "uuid:", "")
	h = strings.Trim(h, "{}")
	h = strings.ReplaceAll(h, "-", "")
	if len(h) != 32 {
		return u, errors.New("kombu: badly formed hexadecimal UUID string")
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, errors.New("kombu: badly formed hexadecimal UUID string")
	}
	return u, nil
}

func appendDate(dst []byte, y, m, d int) []byte {
	dst = append4(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	return append2(dst, d)
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10%10), byte('0'+v%10))
}

func append4(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/1000%10), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

func append6(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/100000%10), byte('0'+v/10000%10), byte('0'+v/1000%10),
		byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// appendClock writes HH:MM:SS[.ffffff] like Python's isoformat (microseconds
// omitted when zero; nanoseconds are truncated to microseconds).
func appendClock(dst []byte, h, m, s, ns int) []byte {
	dst = append2(dst, h)
	dst = append(dst, ':')
	dst = append2(dst, m)
	dst = append(dst, ':')
	dst = append2(dst, s)
	if us := ns / 1000; us != 0 {
		dst = append(dst, '.')
		dst = append6(dst, us)
	}
	return dst
}

// appendOffset writes +HH:MM (or +HH:MM:SS) like Python's utcoffset formatting.
func appendOffset(dst []byte, off int) []byte {
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	dst = append(dst, sign)
	dst = append2(dst, off/3600)
	dst = append(dst, ':')
	dst = append2(dst, off/60%60)
	if off%60 != 0 {
		dst = append(dst, ':')
		dst = append2(dst, off%60)
	}
	return dst
}

func appendTimeOfDay(dst []byte, t TimeOfDay) []byte {
	dst = appendClock(dst, t.Hour, t.Minute, t.Second, t.Nanosecond)
	if t.Aware {
		dst = appendOffset(dst, t.Offset)
	}
	return dst
}

var errYearRange = errors.New("year is out of Python's range 1..9999")

// appendDateTime writes t as Python's datetime.isoformat would. Values in
// the Naive location get no offset. With zulu, a zero offset is written as
// "Z" (kombu 5.2's rewrite of "+00:00").
func appendDateTime(dst []byte, t time.Time, zulu bool) ([]byte, error) {
	y, mo, d := t.Date()
	if y < 1 || y > 9999 {
		return dst, errYearRange
	}
	h, mi, s := t.Clock()
	dst = appendDate(dst, y, int(mo), d)
	dst = append(dst, 'T')
	dst = appendClock(dst, h, mi, s, t.Nanosecond())
	if t.Location() == Naive {
		return dst, nil
	}
	_, off := t.Zone()
	if off == 0 && zulu {
		return append(dst, 'Z'), nil
	}
	return appendOffset(dst, off), nil
}

// parseISODateTime parses what Python's datetime.fromisoformat (3.11)
// accepts in practice: YYYY-MM-DD, optionally followed by a separator
// ('T', 't' or ' ') and HH[:MM[:SS[.f+]]] (also HHMMSS), optionally followed
// by "Z" or ±HH[:MM[:SS[.ffffff]]]. Naive results use the Naive location.
func parseISODateTime(s string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, errors.New("kombu: invalid isoformat string: " + quoteShort(s))
	}
	y, mo, d, rest, ok := parseISODate(s)
	if !ok {
		return bad()
	}
	if rest == "" {
		return time.Date(y, time.Month(mo), d, 0, 0, 0, 0, Naive), nil
	}
	if rest[0] != 'T' && rest[0] != ' ' && rest[0] != 't' {
		return bad()
	}
	tod, ok := parseISOTime(rest[1:])
	if !ok {
		return bad()
	}
	loc := Naive
	if tod.Aware {
		if tod.Offset == 0 {
			loc = time.UTC
		} else {
			loc = time.FixedZone("", tod.Offset)
		}
	}
	return time.Date(y, time.Month(mo), d, tod.Hour, tod.Minute, tod.Second, tod.Nanosecond, loc), nil
}

func parseISODate(s string) (y, m, d int, rest string, ok bool) {
	var n int
	switch {
	case len(s) >= 10 && s[4] == '-' && s[7] == '-':
		n = 10
		y, ok = atoiN(s[0:4])
		if ok {
			m, ok = atoiN(s[5:7])
		}
		if ok {
			d, ok = atoiN(s[8:10])
		}
	case len(s) >= 8 && (len(s) == 8 || s[8] == 'T' || s[8] == ' '):
		n = 8
		y, ok = atoiN(s[0:4])
		if ok {
			m, ok = atoiN(s[4:6])
		}
		if ok {
			d, ok = atoiN(s[6:8])
		}
	}
	if !ok || y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, "", false
	}
	return y, m, d, s[n:], true
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func atoiN(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseISOTime parses HH[:MM[:SS[.fff]]][Z|±HH[:MM[:SS[.ffffff]]]] (colons
// optional as in Python 3.11's fromisoformat).
func parseISOTime(s string) (TimeOfDay, bool) {
	var t TimeOfDay
	// Split off the zone designator.
	zi := strings.IndexAny(s, "Z+-")
	clock, zone := s, ""
	if zi >= 0 {
		clock, zone = s[:zi], s[zi:]
	}
	fields := [3]int{}
	i, n := 0, 0
	for n < 3 && i < len(clock) {
		if n > 0 && clock[i] == ':' {
			i++
		}
		if i+2 > len(clock) {
			return t, false
		}
		v, ok := atoiN(clock[i : i+2])
		if !ok {
			return t, false
		}
		fields[n] = v
		n++
		i += 2
		if i < len(clock) && (clock[i] == '.' || clock[i] == ',') {
			break
		}
	}
	if n == 0 {
		return t, false
	}
	if i < len(clock) {
		if n != 3 || (clock[i] != '.' && clock[i] != ',') {
			return t, false
		}
		frac := clock[i+1:]
		if frac == "" {
			return t, false
		}
		ns := 0
		for j := 0; j < len(frac); j++ {
			c := frac[j]
			if c < '0' || c > '9' {
				return t, false
			}
			if j < 9 {
				ns = ns*10 + int(c-'0')
			}
		}
		for j := len(frac); j < 9; j++ {
			ns *= 10
		}
		t.Nanosecond = ns / 1000 * 1000 // Python keeps microseconds
	}
	t.Hour, t.Minute, t.Second = fields[0], fields[1], fields[2]
	if t.Hour > 23 || t.Minute > 59 || t.Second > 59 {
		return t, false
	}
	if zone != "" {
		t.Aware = true
		if zone == "Z" {
			return t, true
		}
		sign := 1
		if zone[0] == '-' {
			sign = -1
		}
		zt, ok := parseISOTime(zone[1:])
		if !ok || zt.Aware || zt.Hour > 23 {
			return t, false
		}
		t.Offset = sign * (zt.Hour*3600 + zt.Minute*60 + zt.Second)
	}
	return t, true
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "'" + s + "'"
}
