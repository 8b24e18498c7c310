package protocolv2

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

func utc(y int, mo time.Month, d, h, mi, s, us int) time.Time {
	return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC)
}

// checkBasicHeaders asserts the header fields that are the same in most
// client-published captures.
func checkCommon(t *testing.T, task *Task, name, id, origin string) {
	t.Helper()
	eq(t, "Protocol", task.Protocol, 2)
	eq(t, "Name", task.Name, name)
	eq(t, "ID", task.ID, id)
	eq(t, "Lang", task.Lang, "py")
	eq(t, "Origin", task.Origin, origin)
	eq(t, "UTC", task.UTC, true)
}

func decodeCapture(t *testing.T, name string) (*kombu.Message, *Task) {
	t.Helper()
	m := loadMessage(t, name)
	task, err := Decode(m, newRegistry(t))
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return m, task
}

func TestDecodeCaptureBasic(t *testing.T) {
	for _, name := range []string{"redis-5.2-task-basic.json", "redis-5.6-task-basic.json", "amqp-5.2-task-basic.json"} {
		t.Run(name, func(t *testing.T) {
			m, task := decodeCapture(t, name)
			id := "11111111-1111-4111-8111-111111111111"
			origin := "gen11059@vm"
			switch {
			case strings.HasPrefix(name, "amqp"):
				id, origin = "cccccccc-0000-4000-8000-000000000001", "gen13361@vm"
			case strings.Contains(name, "5.6"):
				origin = "gen11666@vm"
			}
			pname, proto := Peek(m)
			eq(t, "Peek", []any{pname, proto}, []any{"wiretasks.add", 2})
			checkCommon(t, task, "wiretasks.add", id, origin)
			eq(t, "Args", task.Args, []any{int64(2), int64(3)})
			eq(t, "Kwargs", task.Kwargs, map[string]any{})
			eq(t, "Shadow", task.Shadow, "")
			eq(t, "ETA.IsZero", task.ETA.IsZero(), true)
			eq(t, "Expires.IsZero", task.Expires.IsZero(), true)
			eq(t, "Group", task.Group, "")
			eq(t, "GroupIndex", task.GroupIndex, (*int)(nil))
			eq(t, "Retries", task.Retries, 0)
			eq(t, "TimeLimit", task.TimeLimit, TimeLimit{})
			eq(t, "RootID", task.RootID, id)
			eq(t, "ParentID", task.ParentID, "")
			eq(t, "ArgsRepr", task.ArgsRepr, "(2, 3)")
			eq(t, "KwargsRepr", task.KwargsRepr, "{}")
			eq(t, "IgnoreResult", task.IgnoreResult, false)
			eq(t, "Extra", task.Extra, map[string]any(nil))
			eq(t, "Callbacks", task.Callbacks, []Signature(nil))
			eq(t, "Errbacks", task.Errbacks, []Signature(nil))
			eq(t, "Chain", task.Chain, []Signature(nil))
			eq(t, "Chord", task.Chord, (*Signature)(nil))
			if strings.Contains(name, "5.6") {
				eq(t, "ReplacedTaskNesting", task.ReplacedTaskNesting, 0)
				eq(t, "StampedHeaders", task.StampedHeaders, []string(nil))
				eq(t, "Stamps", task.Stamps, map[string]any{})
			} else {
				eq(t, "Stamps", task.Stamps, map[string]any(nil))
			}
		})
	}
}

func TestDecodeCaptureCountdownExpires(t *testing.T) {
	m, task := decodeCapture(t, "redis-5.2-task-countdown-expires.json")
	checkCommon(t, task, "wiretasks.add", "11111111-1111-4111-8111-111111111111", "gen11059@vm")
	eq(t, "Args", task.Args, []any{})
	eq(t, "Kwargs", task.Kwargs, map[string]any{"x": int64(1), "y": int64(2)})
	eq(t, "ETA", task.ETA, utc(2026, 11, 26, 7, 55, 52, 549680))
	eq(t, "Expires", task.Expires, utc(2026, 11, 26, 7, 57, 22, 549680))
	eq(t, "ETA location", task.ETA.Location(), time.UTC)
	eq(t, "ArgsRepr", task.ArgsRepr, "()")
	eq(t, "KwargsRepr", task.KwargsRepr, "{'x': 1, 'y': 2}")
	eq(t, "expiration property", m.Properties.Expiration, "120000")
}

func TestDecodeCaptureAMQPZlib(t *testing.T) {
	m, task := decodeCapture(t, "amqp-5.2-task-eta-expires-prio-zlib.json")
	checkCommon(t, task, "wiretasks.add", "cccccccc-0000-4000-8000-000000000002", "gen13361@vm")
	eq(t, "Args", task.Args, []any{int64(2), int64(3)})
	eq(t, "ETA", task.ETA, utc(2026, 11, 26, 8, 0, 46, 259538))
	eq(t, "Expires", task.Expires, utc(2026, 11, 26, 8, 4, 46, 259538))
	eq(t, "Extra (compression is not kept)", task.Extra, map[string]any(nil))
	eq(t, "priority", m.Properties.Priority, 7)
}

func TestDecodeCaptureLinkErrback(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-link-errback.json")
	eq(t, "Args", task.Args, []any{int64(1), int64(1)})
	empty := map[string]any{}
	eq(t, "Callbacks", task.Callbacks, []Signature{
		{Task: "wiretasks.mul", Args: []any{int64(10)}, Kwargs: empty, Options: empty},
	})
	eq(t, "Errbacks", task.Errbacks, []Signature{
		{Task: "wiretasks.on_err_old", Args: []any{}, Kwargs: empty, Options: empty},
		{Task: "wiretasks.on_err_new", Args: []any{}, Kwargs: empty, Options: empty},
	})
	eq(t, "Chain", task.Chain, []Signature(nil))
}

func TestDecodeCaptureChain(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-chain.json")
	eq(t, "Args", task.Args, []any{int64(1), int64(2)})
	if len(task.Chain) != 3 {
		t.Fatalf("Chain has %d steps, want 3", len(task.Chain))
	}
	reply := "f6727ea5-3d15-3fd5-92da-b1eb3839c3de"
	want := []struct {
		task, id  string
		args      []any
		immutable bool
	}{ // reversed: the next step is last
		{"wiretasks.xsum", "a789f094-315e-4abc-a2a3-f34a25061dec", []any{}, false},
		{"wiretasks.mul", "f8165b94-2d6e-4048-9176-9480c5d291aa", []any{int64(5), int64(5)}, true},
		{"wiretasks.add", "d8c2b037-3616-4b03-b1c2-ee52fb09f341", []any{int64(3)}, false},
	}
	for i, w := range want {
		s := task.Chain[i]
		eq(t, "Task", s.Task, w.task)
		eq(t, "TaskID", s.TaskID(), w.id)
		eq(t, "ReplyTo", s.ReplyTo(), reply)
		eq(t, "Args", s.Args, w.args)
		eq(t, "Immutable", s.Immutable, w.immutable)
		eq(t, "SubtaskType", s.SubtaskType, "")
		eq(t, "IsComplex", s.IsComplex(), false)
	}
}

func TestDecodeCaptureChainWithGroup(t *testing.T) {
	raw := readCapture(t, "redis-5.2-chain-with-group-embed.decoded.json")
	embed, err := kombu.UnmarshalJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _, err := kombu.Marshal("json", []any{[]any{int64(1), int64(1)}, map[string]any{}, embed}, kombu.JSONPlain)
	if err != nil {
		t.Fatal(err)
	}
	m := &kombu.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"task": "wiretasks.add", "id": "x1"}}
	task, err := Decode(m, newRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Chain) != 1 {
		t.Fatalf("Chain = %d steps, want 1", len(task.Chain))
	}
	ch := task.Chain[0]
	eq(t, "Task", ch.Task, "celery.chord")
	eq(t, "SubtaskType", ch.SubtaskType, "chord")
	eq(t, "TaskID", ch.TaskID(), "52ed0672-7cfd-48e9-bb11-276f29233fb4")
	header, err := ch.Header()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "header.Task", header.Task, "celery.group")
	eq(t, "header.SubtaskType", header.SubtaskType, "group")
	eq(t, "header.RootID (null)", header.RootID(), "")
	members, err := header.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "len(members)", len(members), 2)
	eq(t, "members[0].Task", members[0].Task, "wiretasks.add")
	eq(t, "members[0].Args", members[0].Args, []any{int64(10)})
	eq(t, "members[0].TaskID", members[0].TaskID(), "64bebccd-2300-40d1-a997-a8da2d20de91")
	gi, ok := members[1].GroupIndex()
	eq(t, "members[1].GroupIndex", []any{gi, ok}, []any{1, true})
	co, err := members[1].ChordOption()
	if err != nil || co == nil {
		t.Fatalf("ChordOption: %v %v", co, err)
	}
	eq(t, "members[1] chord option task id", co.TaskID(), "abababab-0000-4000-8000-000000000001")
	body2, err := ch.ChordBody()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "body.Task", body2.Task, "wiretasks.xsum")
	eq(t, "body.TaskID", body2.TaskID(), "abababab-0000-4000-8000-000000000001")
	// The nested structure round-trips through Value.
	eq(t, "Value round trip", ch.Value(), embed.(map[string]any)["chain"].([]any)[0])
}

func TestDecodeCaptureChordHeader(t *testing.T) {
	cases := []struct {
		file, id, group, bodyID, origin string
		bodyGroupID                     string
	}{
		{"redis-5.2-task-chord-header.json", "1631d054-e400-4c6b-a154-d91c5476fe0e", "d05378f8-7b02-44f9-9868-74d7a3bf8371", "fb117ddd-0a85-43b9-935e-078281eefbff", "gen11059@vm", ""},
		{"redis-5.6-task-chord-header.json", "c8599fe8-d547-4115-b994-6d8b44714f6b", "a423fc06-bf4d-4b8d-8a8e-03f7f16c7131", "a522f969-e7a7-45b5-9a52-6f87983fcaf5", "gen11666@vm", "a423fc06-bf4d-4b8d-8a8e-03f7f16c7131"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			_, task := decodeCapture(t, c.file)
			checkCommon(t, task, "wiretasks.add", c.id, c.origin)
			eq(t, "Group", task.Group, c.group)
			eq(t, "GroupIndex", task.GroupIndex, intp(1))
			eq(t, "Args", task.Args, []any{int64(2), int64(2)})
			if task.Chord == nil {
				t.Fatal("Chord is nil")
			}
			eq(t, "Chord.Task", task.Chord.Task, "wiretasks.xsum")
			eq(t, "Chord.TaskID", task.Chord.TaskID(), c.bodyID)
			eq(t, "Chord.GroupID", task.Chord.GroupID(), c.bodyGroupID)
			eq(t, "Chord.Immutable", task.Chord.Immutable, false)
		})
	}
}

func TestDecodeCaptureChordCallback(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-chord-callback.json")
	checkCommon(t, task, "wiretasks.xsum", "4257416b-e2f2-49cb-9000-c84cd4e3e6ac", "gen12187@vm")
	eq(t, "Args", task.Args, []any{[]any{int64(2), int64(4), int64(6)}})
	eq(t, "RootID", task.RootID, "ecfba601-9575-4477-a053-bcc5a323601f")
	eq(t, "ParentID", task.ParentID, "ecfba601-9575-4477-a053-bcc5a323601f")
	eq(t, "ArgsRepr", task.ArgsRepr, "([2, 4, 6],)")
	eq(t, "Group", task.Group, "")
}

func TestDecodeCaptureGroupMember(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-group-member.json")
	eq(t, "Group", task.Group, "aec36d75-c6a9-4a08-adc4-19f3f599c4e6")
	eq(t, "GroupIndex", task.GroupIndex, (*int)(nil))
	eq(t, "RootID", task.RootID, "f8d6c16f-c165-4b24-84c2-c2ce9feaf0b9")
	eq(t, "RootID==ID", task.RootID, task.ID)
}

func TestDecodeCaptureLinkCallback(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-link-callback.json")
	checkCommon(t, task, "wiretasks.mul", "9927decd-d45d-4eb3-acc6-49b8b9dd5abf", "gen12187@vm")
	eq(t, "Args", task.Args, []any{int64(2), int64(10)})
	eq(t, "RootID", task.RootID, "aaaaaaaa-0000-4000-8000-000000000004")
	eq(t, "ParentID", task.ParentID, "aaaaaaaa-0000-4000-8000-000000000004")
}

func TestDecodeCaptureOldStyleErrback(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.2-task-old-style-errback.json")
	checkCommon(t, task, "wiretasks.on_err_old", "d17e0479-4532-4f2a-aaba-b3d009e85478", "gen12187@vm")
	eq(t, "Args", task.Args, []any{"aaaaaaaa-0000-4000-8000-000000000005"})
	eq(t, "Group", task.Group, "607e583d-182d-4c46-afc7-d216ece409bc")
	eq(t, "GroupIndex", task.GroupIndex, (*int)(nil))
	eq(t, "ParentID", task.ParentID, "aaaaaaaa-0000-4000-8000-000000000005")
	eq(t, "ArgsRepr", task.ArgsRepr, "('aaaaaaaa-0000-4000-8000-000000000005',)")
}

func TestDecodeCaptureRetry(t *testing.T) {
	cases := []struct {
		file   string
		eta    time.Time
		origin string
		props  map[string]any
		stamps map[string]any
	}{
		{"redis-5.2-task-retry-republished.json", utc(2026, 11, 26, 7, 56, 37, 469346), "gen12187@vm",
			map[string]any{"replaced_task_nesting": int64(0), "origin": "gen12338@vm"}, nil},
		{"redis-5.6-task-retry-republished.json", utc(2026, 11, 26, 8, 1, 14, 630182), "gen14067@vm",
			map[string]any{"origin": "gen14067@vm"}, map[string]any{}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, task := decodeCapture(t, c.file)
			checkCommon(t, task, "wiretasks.retry_once", "aaaaaaaa-0000-4000-8000-000000000003", c.origin)
			eq(t, "Retries", task.Retries, 1)
			eq(t, "ETA", task.ETA, c.eta)
			eq(t, "Args", task.Args, []any{int64(7)})
			eq(t, "ArgsRepr", task.ArgsRepr, "(7,)")
			eq(t, "ParentID", task.ParentID, task.ID)
			eq(t, "Stamps", task.Stamps, c.stamps)
			eq(t, "extra properties", m.Properties.Extra, c.props)
		})
	}
}

func TestDecodeCaptureSendTaskOptions(t *testing.T) {
	m, task := decodeCapture(t, "redis-5.2-task-send_task-options.json")
	checkCommon(t, task, "wiretasks.add", "11111111-1111-4111-8111-111111111111", "gen11059@vm")
	eq(t, "Shadow", task.Shadow, "add-shadow")
	eq(t, "DisplayName", task.DisplayName(), "add-shadow")
	eq(t, "TimeLimit.Hard", *task.TimeLimit.Hard, 30.0)
	eq(t, "TimeLimit.Soft", *task.TimeLimit.Soft, 20.0)
	eq(t, "IgnoreResult", task.IgnoreResult, true)
	eq(t, "Extra", task.Extra, map[string]any{"x-custom": "v"})
	eq(t, "ArgsRepr (list, as send_task sends it)", task.ArgsRepr, "[5, 6]")
	eq(t, "Args", task.Args, []any{int64(5), int64(6)})
	eq(t, "routing key", m.Properties.DeliveryInfo.RoutingKey, "wire_other")
}

func TestDecodeCaptureMsgpackZlib(t *testing.T) {
	for _, name := range []string{"redis-5.2-task-msgpack.json", "redis-5.2-task-zlib.json"} {
		t.Run(name, func(t *testing.T) {
			_, task := decodeCapture(t, name)
			checkCommon(t, task, "wiretasks.add", "11111111-1111-4111-8111-111111111111", "gen11059@vm")
			eq(t, "Args", task.Args, []any{int64(1), int64(2)})
			eq(t, "Kwargs", task.Kwargs, map[string]any{})
			eq(t, "Extra", task.Extra, map[string]any(nil))
			eq(t, "Chord", task.Chord, (*Signature)(nil))
		})
	}
	// msgpack refused when not accepted: ContentDisallowedError passes through.
	m := loadMessage(t, "redis-5.2-task-msgpack.json")
	jsonOnly, _ := kombu.NewRegistry(nil)
	_, err := Decode(m, jsonOnly)
	var cd *kombu.ContentDisallowedError
	if !errorsAs(err, &cd) {
		t.Fatalf("err = %v, want *kombu.ContentDisallowedError", err)
	}
	eq(t, "ContentType", cd.ContentType, "application/x-msgpack")
}

func TestDecodeCaptureSpecialTypes(t *testing.T) {
	_, t52 := decodeCapture(t, "redis-5.2-task-json-special-types.json")
	eq(t, "5.2 Args (plain strings)", t52.Args, []any{
		"2024-01-02T03:04:05.600000Z", "2024-01-02T03:04:05", "2024-01-02T00:00:00",
		"03:04:05", "1.10", "12345678-1234-5678-1234-567812345678",
	})
	_, t56 := decodeCapture(t, "redis-5.6-task-json-special-types.json")
	uuid, _ := kombu.ParseUUID("12345678-1234-5678-1234-567812345678")
	eq(t, "5.6 Args (typed)", t56.Args, []any{
		time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 0, kombu.Naive),
		kombu.Date{Year: 2024, Month: 1, Day: 2},
		kombu.TimeOfDay{Hour: 3, Minute: 4, Second: 5},
		kombu.Decimal("1.10"),
		uuid,
	})
	// The Python argsrepr of the same call, recomputed from the typed values.
	eq(t, "ArgsRepr(5.6 args)", ArgsRepr(t56.Args), t56.ArgsRepr)
}

func TestDecodeCaptureJSONBytes(t *testing.T) {
	_, task := decodeCapture(t, "redis-5.6-task-json-bytes.json")
	eq(t, "Args", task.Args, []any{[]byte("abc"), []byte{0xff, 0x00}})
	eq(t, "ArgsRepr", task.ArgsRepr, "(b'abc', b'ff00')")
	eq(t, "ArgsRepr(args)", ArgsRepr(task.Args), task.ArgsRepr)
}

func TestDecodeCaptureProtocolV1(t *testing.T) {
	m, task := decodeCapture(t, "redis-5.2-task-protocol-v1.json")
	name, proto := Peek(m)
	eq(t, "Peek", []any{name, proto}, []any{"", 0})
	eq(t, "Protocol", task.Protocol, 1)
	eq(t, "Name", task.Name, "wiretasks.add")
	eq(t, "ID", task.ID, "12121212-0000-4000-8000-000000000001")
	eq(t, "Args", task.Args, []any{int64(1), int64(2)})
	eq(t, "Kwargs", task.Kwargs, map[string]any{})
	eq(t, "ETA", task.ETA, utc(2026, 11, 26, 8, 4, 9, 35546))
	eq(t, "Expires.IsZero", task.Expires.IsZero(), true)
	eq(t, "UTC", task.UTC, true)
	eq(t, "Group", task.Group, "")
	eq(t, "Retries", task.Retries, 0)
	eq(t, "TimeLimit", task.TimeLimit, TimeLimit{})
	empty := map[string]any{}
	eq(t, "Callbacks", task.Callbacks, []Signature{{Task: "wiretasks.mul", Args: []any{int64(3)}, Kwargs: empty, Options: empty}})
	eq(t, "Errbacks", task.Errbacks, []Signature(nil))
	eq(t, "Chain", task.Chain, []Signature(nil))
	eq(t, "Chord", task.Chord, (*Signature)(nil))
	eq(t, "Extra", task.Extra, map[string]any(nil))
}

// TestDecodeAllTaskCaptures makes sure no task capture is left untested.
func TestDecodeAllTaskCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(capturesDir, "*-5.?-task-*.json"))
	if len(files) < 20 {
		t.Fatalf("found %d task captures, want >= 20", len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		m := loadMessage(t, name)
		task, err := Decode(m, newRegistry(t))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if task.ID == "" || task.Name == "" {
			t.Errorf("%s: empty id/name", name)
		}
		// Every capture re-encodes and decodes to the same task.
		roundTrip(t, name, task)
	}
}
