package contribpubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// envelopeMagic starts every payload Mecha publishes. Its first byte, 0xFF,
// never occurs in UTF-8 text, so no JSON, XML or other text payload of a
// non-Mecha producer can be mistaken for an envelope.
const envelopeMagic = "\xffMECHA1\n"

// maxHeader bounds the header line of an envelope, so that a corrupt
// payload cannot make the decoder scan or allocate without limit.
const maxHeader = 1 << 20

// envelope is how a Mecha message travels through a broker: the magic,
// one line of JSON holding what the contrib components do not carry (the
// id, content type, metadata, times and delivery attempt), then the data
// unchanged. The data is not base64-encoded, so the broker stores it at
// its own size.
type envelope struct {
	// ID is the message id Mecha returned from Publish.
	ID string `json:"id"`
	// Copy identifies this broker message: the id for a published
	// message, a new value for each copy Mecha republishes (a held
	// message handed back to the broker). Duplicates of one broker
	// message (a broker redelivering what Mecha still holds) share it.
	Copy string `json:"copy,omitempty"`
	// ContentType is the publisher's content type.
	ContentType string `json:"ct,omitempty"`
	// Metadata is the publisher's metadata.
	Metadata map[string]string `json:"md,omitempty"`
	// PublishTime is when Mecha accepted the message, in Unix
	// nanoseconds.
	PublishTime int64 `json:"pt"`
	// DeliverAt holds delivery back until then (Unix nanoseconds; 0: at
	// once).
	DeliverAt int64 `json:"da,omitempty"`
	// Attempt is the number of the next delivery (0 and 1 both mean the
	// first).
	Attempt int `json:"at,omitempty"`
	// Group, when set, addresses a copy Mecha republished for one consumer
	// group only; the other groups settle it without delivering it.
	Group string `json:"g,omitempty"`
	// Data is the payload; it follows the header line.
	Data []byte `json:"-"`
}

// encode returns the envelope's wire form.
func (e *envelope) encode() ([]byte, error) {
	h, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(envelopeMagic)+len(h)+1+len(e.Data))
	b = append(b, envelopeMagic...)
	b = append(b, h...)
	b = append(b, '\n')
	return append(b, e.Data...), nil
}

var errNotEnvelope = errors.New("not a mecha envelope")

// decodeEnvelope parses b; errNotEnvelope means b is a payload of a
// non-Mecha producer (or one too damaged to read), to deliver as it is.
func decodeEnvelope(b []byte) (*envelope, error) {
	if !bytes.HasPrefix(b, []byte(envelopeMagic)) {
		return nil, errNotEnvelope
	}
	rest := b[len(envelopeMagic):]
	nl := bytes.IndexByte(rest[:min(len(rest), maxHeader)], '\n')
	if nl < 0 {
		return nil, errNotEnvelope
	}
	e := &envelope{}
	if err := json.Unmarshal(rest[:nl], e); err != nil || e.ID == "" {
		return nil, errNotEnvelope
	}
	e.Data = rest[nl+1:]
	if e.Copy == "" {
		e.Copy = e.ID
	}
	if e.Attempt < 1 {
		e.Attempt = 1
	}
	return e, nil
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
