package contribpubsub

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name string
		env  envelope
	}{
		{"full", envelope{ID: "id1", Copy: "c1", ContentType: "application/json", Metadata: map[string]string{"k": "v\nw", "": "x"}, PublishTime: at.UnixNano(), DeliverAt: at.Add(time.Hour).UnixNano(), Attempt: 3, Group: "g/1", Data: []byte{0, 0xff, '\n', 'x'}}},
		{"minimal", envelope{ID: "id2", PublishTime: 1}},
		{"newlines in data", envelope{ID: "id3", PublishTime: 1, Data: []byte("\n\n{\"id\":\"fake\"}\n")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.env.encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEnvelope(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tc.env
			if want.Copy == "" {
				want.Copy = want.ID
			}
			if want.Attempt == 0 {
				want.Attempt = 1
			}
			if got.ID != want.ID || got.Copy != want.Copy || got.ContentType != want.ContentType ||
				got.PublishTime != want.PublishTime || got.DeliverAt != want.DeliverAt ||
				got.Attempt != want.Attempt || got.Group != want.Group || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
			if len(got.Metadata) != len(want.Metadata) {
				t.Fatalf("metadata %v, want %v", got.Metadata, want.Metadata)
			}
			for k, v := range want.Metadata {
				if got.Metadata[k] != v {
					t.Fatalf("metadata %v, want %v", got.Metadata, want.Metadata)
				}
			}
		})
	}
}

// TestEnvelopeRejectsForeignPayloads checks that what other producers
// publish is delivered as it is, never mistaken for an envelope.
func TestEnvelopeRejectsForeignPayloads(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte(""),
		[]byte(`{"id":"x","data":"y"}`),
		[]byte("MECHA1\n{\"id\":\"x\"}\n"),          // no 0xFF
		[]byte(envelopeMagic),                       // no header
		[]byte(envelopeMagic + `{"id":"x"}`),        // no end of header
		[]byte(envelopeMagic + "{not json}\nrest"),  // bad header
		[]byte(envelopeMagic + `{"ct":"x"}` + "\n"), // no id
		[]byte("\xffMECHA2\n{\"id\":\"x\"}\n"),      // another version
	} {
		if e, err := decodeEnvelope(b); !errors.Is(err, errNotEnvelope) {
			t.Errorf("decodeEnvelope(%q) = %+v, %v; want errNotEnvelope", b, e, err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	e := envelope{ID: "a", Metadata: map[string]string{"k": "v"}, PublishTime: 5, Data: []byte("data")}
	b, _ := e.encode()
	f.Add(b)
	f.Add([]byte(envelopeMagic + "{}\n"))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		b2, err := e.encode()
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeEnvelope(b2)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if e2.ID != e.ID || e2.Copy != e.Copy || !bytes.Equal(e2.Data, e.Data) || e2.Attempt != e.Attempt {
			t.Fatalf("round trip changed %+v into %+v", e, e2)
		}
	})
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		same bool
	}{
		{"orders", true},
		{"orders.created", false},
		{"a b", false},
		{string(make([]byte, 300)), false},
	} {
		got := sanitize(tc.in, 64, alnum)
		if (got == tc.in) != tc.same {
			t.Errorf("sanitize(%q) = %q", tc.in, got)
		}
		if len(got) > 64 {
			t.Errorf("sanitize(%q) = %q, longer than 64", tc.in, got)
		}
		for _, r := range got {
			if !alnum(r) {
				t.Errorf("sanitize(%q) = %q keeps %q", tc.in, got, r)
			}
		}
	}
	// Names that differ only in replaced characters stay different.
	if sanitize("a.b", 64, alnum) == sanitize("a_b", 64, alnum) || sanitize("a.b", 64, alnum) == sanitize("a-b", 64, alnum) {
		t.Error("sanitize maps different names to one")
	}
}
