package protocolv2

import (
	"errors"
	"strconv"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

// errBadTime is returned (wrapped) for strings ParseTime does not accept.
var errBadTime = errors.New("not an ISO 8601 date/time")

// ParseTime parses an ISO 8601 timestamp as found in Celery's eta and
// expires headers. It accepts the union of what Celery 5.2
// (celery.utils.iso8601.parse_iso8601) and Celery 5.3+ (dateutil isoparse)
// read from real producers:
//
//   - a date: YYYY-MM-DD (month and day may have one digit) or YYYYMMDD;
//     a date alone means midnight;
//   - then one separator character (normally 'T' or ' ') and a time:
//     HH, HH:MM, HH:MM:SS or the basic forms HHMM, HHMMSS;
//   - an optional fraction after the seconds, '.' or ',' and one or more
//     digits; digits after the sixth are ignored (microsecond precision);
//   - an optional zone: Z or z (UTC), ±HH, ±HHMM, ±HH:MM or ±HH:MM:SS.
//
// The whole string must match (Celery 5.2 ignored trailing garbage; 5.3+
// does not). Values out of range (month 13, Feb 30, hour 24, second 60)
// are errors, as in Python.
//
// A string with a zone yields a time in that fixed zone (time.UTC for a
// zero offset), so the sender's offset is kept. A naive string yields its
// wall clock in the kombu.Naive location, kombu's marker for naive Python
// datetimes: a UTC+0 zone, so the instant is the one Celery's
// maybe_make_aware gives (naive = UTC), while IsNaive and FormatTime still
// know it had no zone.
func ParseTime(s string) (time.Time, error) {
	p := isoParser{s: s}
	t, naive, ok := p.parse()
	if !ok {
		return time.Time{}, &timeError{s: s}
	}
	if naive {
		t = t.In(kombu.Naive)
	}
	return t, nil
}

// IsNaive reports whether t stands for a naive Python datetime (its
// location is kombu.Naive). Naive times compare as UTC.
func IsNaive(t time.Time) bool { return t.Location() == kombu.Naive }

type timeError struct{ s string }

func (e *timeError) Error() string {
	return "invalid ISO 8601 time " + strconv.Quote(truncateForError(e.s)) + ": " + errBadTime.Error()
}

func (e *timeError) Unwrap() error { return errBadTime }

func truncateForError(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type isoParser struct {
	s string
	i int
}

// digits reads exactly n ASCII digits.
func (p *isoParser) digits(n int) (int, bool) {
	if p.i+n > len(p.s) {
		return 0, false
	}
	v := 0
	for k := 0; k < n; k++ {
		c := p.s[p.i+k]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, true
}

// digitsRun reads between min and max digits, as many as present.
func (p *isoParser) digitsRun(min, max int) (int, bool) {
	v, n := 0, 0
	for n < max && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		v = v*10 + int(p.s[p.i]-'0')
		p.i++
		n++
	}
	return v, n >= min
}

func (p *isoParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *isoParser) eof() bool { return p.i >= len(p.s) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *isoParser) parse() (time.Time, bool, bool) {
	year, ok := p.digits(4)
	if !ok {
		return time.Time{}, false, false
	}
	var month, day int
	if p.peek() == '-' {
		p.i++
		if month, ok = p.digitsRun(1, 2); !ok || p.peek() != '-' {
			return time.Time{}, false, false
		}
		p.i++
		if day, ok = p.digitsRun(1, 2); !ok {
			return time.Time{}, false, false
		}
	} else {
		if month, ok = p.digits(2); !ok {
			return time.Time{}, false, false
		}
		if day, ok = p.digits(2); !ok {
			return time.Time{}, false, false
		}
	}
	var hour, minute, sec, usec int
	naive := true
	loc := time.UTC
	if !p.eof() {
		if isDigit(p.peek()) || p.peek() >= 0x80 {
			return time.Time{}, false, false
		}
		p.i++ // the date/time separator: any single ASCII non-digit
		if hour, ok = p.digits(2); !ok {
			return time.Time{}, false, false
		}
		extended := p.peek() == ':'
		if extended {
			p.i++
			if minute, ok = p.digits(2); !ok {
				return time.Time{}, false, false
			}
			if p.peek() == ':' {
				p.i++
				if sec, ok = p.digits(2); !ok {
					return time.Time{}, false, false
				}
				if usec, ok = p.fraction(); !ok {
					return time.Time{}, false, false
				}
			}
		} else if isDigit(p.peek()) {
			if minute, ok = p.digits(2); !ok {
				return time.Time{}, false, false
			}
			if isDigit(p.peek()) {
				if sec, ok = p.digits(2); !ok {
					return time.Time{}, false, false
				}
				if usec, ok = p.fraction(); !ok {
					return time.Time{}, false, false
				}
			}
		}
		if !p.eof() {
			var off int
			if off, ok = p.zone(); !ok || !p.eof() {
				return time.Time{}, false, false
			}
			naive = false
			if off != 0 {
				loc = time.FixedZone("", off)
			}
		}
	}
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, usec*1000, loc), naive, true
}

// fraction reads an optional [.,]digits suffix and returns microseconds.
func (p *isoParser) fraction() (int, bool) {
	if c := p.peek(); c != '.' && c != ',' {
		return 0, true
	}
	p.i++
	start := p.i
	usec, n := 0, 0
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		if n < 6 {
			usec = usec*10 + int(p.s[p.i]-'0')
			n++
		}
		p.i++
	}
	if p.i == start {
		return 0, false
	}
	for ; n < 6; n++ {
		usec *= 10
	}
	return usec, true
}

// zone reads Z, z, ±HH, ±HHMM or ±HH:MM and returns the offset in seconds.
func (p *isoParser) zone() (int, bool) {
	switch p.peek() {
	case 'Z', 'z':
		p.i++
		return 0, true
	case '+', '-':
	default:
		return 0, false
	}
	sign := 1
	if p.s[p.i] == '-' {
		sign = -1
	}
	p.i++
	hh, ok := p.digits(2)
	if !ok {
		return 0, false
	}
	mm, ss := 0, 0
	if p.peek() == ':' {
		p.i++
		if mm, ok = p.digits(2); !ok {
			return 0, false
		}
		if p.peek() == ':' { // +HH:MM:SS, as Python's isoformat writes it
			p.i++
			if ss, ok = p.digits(2); !ok || ss > 59 {
				return 0, false
			}
		}
	} else if isDigit(p.peek()) {
		if mm, ok = p.digits(2); !ok {
			return 0, false
		}
	}
	if hh > 23 || mm > 59 {
		return 0, false
	}
	return sign * (hh*3600 + mm*60 + ss), true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// FormatTime formats t like Python's datetime.isoformat(), which is what
// Celery puts in eta/expires headers: "2026-11-26T07:55:52.549680+00:00".
// The fraction is omitted when the microseconds are zero; the offset is
// t's own (+00:00 for UTC; +HH:MM:SS when it has seconds). A naive time
// (location kombu.Naive) is written without offset, "2024-01-02T03:04:05".
// Sub-microsecond digits are dropped.
func FormatTime(t time.Time) string {
	b := appendNaive(make([]byte, 0, 32), t)
	if IsNaive(t) {
		return string(b)
	}
	_, off := t.Zone()
	return string(appendOffset(b, off))
}

func appendNaive(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(mo), 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, 'T')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		b = appendPad(b, us, 6)
	}
	return b
}

func appendOffset(b []byte, off int) []byte {
	if off < 0 {
		b = append(b, '-')
		off = -off
	} else {
		b = append(b, '+')
	}
	b = appendPad(b, off/3600, 2)
	b = append(b, ':')
	b = appendPad(b, off%3600/60, 2)
	if s := off % 60; s != 0 {
		b = append(b, ':')
		b = appendPad(b, s, 2)
	}
	return b
}

func appendPad(b []byte, v, width int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	tmp[i] = byte('0' + v)
	for n := len(tmp) - i; n < width; n++ {
		b = append(b, '0')
	}
	return append(b, tmp[i:]...)
}
