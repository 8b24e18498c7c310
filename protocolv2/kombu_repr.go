package protocolv2

import (
	"strconv"

	"github.com/celerity-go/celerity/kombu"
)

// kombuRepr renders kombu's special value types as Python reprs.
func kombuRepr(v any) (string, bool) {
	switch x := v.(type) {
	case kombu.Date:
		return "datetime.date(" + strconv.Itoa(x.Year) + ", " + strconv.Itoa(int(x.Month)) + ", " + strconv.Itoa(x.Day) + ")", true
	case kombu.TimeOfDay:
		s := "datetime.time(" + timeFields([]int{x.Hour, x.Minute, x.Second, x.Nanosecond / 1000})
		if x.Aware {
			s += ", tzinfo=" + reprTimezone(x.Offset)
		}
		return s + ")", true
	case kombu.Decimal:
		return "Decimal('" + string(x) + "')", true
	case kombu.UUID:
		return "UUID('" + x.String() + "')", true
	}
	return "", false
}
