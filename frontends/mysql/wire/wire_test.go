package wire

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"testing"
)

func TestPacketRoundTripAndSplit(t *testing.T) {
	for _, n := range []int{0, 1, 250, 1 << 16, MaxPacketLength - 1, MaxPacketLength, MaxPacketLength + 10, 2 * MaxPacketLength} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		next, err := WritePacket(bw, 3, payload)
		if err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		physical := n/MaxPacketLength + 1
		if want := uint8(3 + physical); next != want {
			t.Errorf("n=%d: next seq %d, want %d", n, next, want)
		}
		if want := n + 4*physical; buf.Len() != want {
			t.Errorf("n=%d: %d bytes on the wire, want %d", n, buf.Len(), want)
		}
		got, seq, err := ReadPacket(bufio.NewReader(&buf), 3*MaxPacketLength, nil)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !bytes.Equal(got, payload) || seq != next-1 {
			t.Errorf("n=%d: read back %d bytes seq %d", n, len(got), seq)
		}
	}
}

func TestReadPacketLimit(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	WritePacket(bw, 0, make([]byte, MaxPacketLength+5))
	bw.Flush()
	// The limit is checked per physical packet before it is read.
	if _, _, err := ReadPacket(bufio.NewReader(&buf), MaxPacketLength, nil); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("err = %v, want ErrPacketTooLarge", err)
	}
	if _, _, err := ReadPacket(bufio.NewReader(bytes.NewReader([]byte{5, 0, 0, 0, 1, 2})), 100, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated packet: err = %v", err)
	}
}

func TestCopyPacketStreams(t *testing.T) {
	payload := bytes.Repeat([]byte("row-data"), 10000)
	var src bytes.Buffer
	bw := bufio.NewWriter(&src)
	WritePacket(bw, 9, payload)
	bw.Flush()
	wire := append([]byte(nil), src.Bytes()...)
	br := bufio.NewReaderSize(&src, 4096) // smaller than the packet
	var dst bytes.Buffer
	out := bufio.NewWriterSize(&dst, 4096)
	n, seq, err := Header(br)
	if err != nil || n != len(payload) || seq != 9 {
		t.Fatalf("header %d %d %v", n, seq, err)
	}
	if err := CopyPacket(out, br, n, seq); err != nil {
		t.Fatal(err)
	}
	out.Flush()
	if !bytes.Equal(dst.Bytes(), wire) {
		t.Fatal("copied packet differs")
	}
}

func TestLenEnc(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1<<64 - 1} {
		b := AppendLenEnc(nil, v)
		got, n, ok := LenEnc(b)
		if !ok || got != v || n != len(b) {
			t.Errorf("%d: got %d size %d ok %v (encoded %x)", v, got, n, ok, b)
		}
		if _, _, ok := LenEnc(b[:len(b)-1]); ok && len(b) > 1 {
			t.Errorf("%d: truncated encoding accepted", v)
		}
	}
	for _, b := range [][]byte{{0xfb}, {0xff}, {}} {
		if _, _, ok := LenEnc(b); ok {
			t.Errorf("%x accepted as an integer", b)
		}
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	g := &Greeting{ServerVersion: "5.5.5-10.11.19-MariaDB", ConnID: 1<<30 + 7, AuthData: NewScramble(),
		Caps: Understood, Collation: 45, Status: StatusAutocommit, AuthPlugin: CachingSHA2}
	got, err := ParseGreeting(g.AppendPayload(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.ServerVersion != g.ServerVersion || got.ConnID != g.ConnID || !bytes.Equal(got.AuthData, g.AuthData) ||
		got.Caps != g.Caps || got.Collation != 45 || got.Status != g.Status || got.AuthPlugin != CachingSHA2 {
		t.Fatalf("greeting round trip: %+v", got)
	}
	attrs := AppendLenEncString(AppendLenEncString(nil, []byte("_client_name")), []byte("test"))
	r := &HandshakeResponse{Caps: Understood, MaxPacket: 1 << 24, Collation: 224, User: "app",
		AuthResponse: NativeResponse(g.AuthData, "pw"), DB: "shop", AuthPlugin: NativePassword, Attrs: attrs}
	back, err := ParseHandshakeResponse(r.AppendPayload(nil))
	if err != nil {
		t.Fatal(err)
	}
	if back.User != "app" || back.DB != "shop" || back.AuthPlugin != NativePassword || back.Collation != 224 ||
		!bytes.Equal(back.AuthResponse, r.AuthResponse) || !bytes.Equal(back.Attrs, attrs) {
		t.Fatalf("response round trip: %+v", back)
	}
	if pairs := AttrPairs(back.Attrs); len(pairs) != 1 || pairs[0] != [2]string{"_client_name", "test"} {
		t.Fatalf("attrs %v", pairs)
	}
	if !IsSSLRequest(r.AppendSSLRequest(nil)) {
		t.Fatal("SSLRequest not recognised")
	}
	cu := &ChangeUser{User: "u2", AuthResponse: []byte("0123456789abcdefghij"), DB: "d", Collation: 33, AuthPlugin: NativePassword, Attrs: attrs}
	cb, err := ParseChangeUser(cu.AppendPayload(nil, Understood), Understood)
	if err != nil || cb.User != "u2" || cb.DB != "d" || cb.Collation != 33 || !bytes.Equal(cb.Attrs, attrs) {
		t.Fatalf("change user round trip: %+v %v", cb, err)
	}
}

func TestAuthScrambles(t *testing.T) {
	// The answers themselves are checked end to end against the clients'
	// own implementations (go-sql-driver, libmariadb) in the frontend tests.
	scramble := []byte("abcdefghijklmnopqrst")
	if got := NativeResponse(scramble, ""); got != nil {
		t.Fatalf("empty password answers %x", got)
	}
	a, b := NativeResponse(scramble, "secret"), NativeResponse(scramble, "secret")
	if len(a) != 20 || !Equal(a, b) || Equal(a, NativeResponse(scramble, "Secret")) {
		t.Fatal("native response not deterministic or not password-dependent")
	}
	if len(SHA2Response(scramble, "secret")) != 32 {
		t.Fatal("sha2 response length")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	enc, err := EncryptPassword("pässword", scramble, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptPassword(enc, scramble, key); err != nil || got != "pässword" {
		t.Fatalf("decrypt = %q, %v", got, err)
	}
	if got, err := DecryptPassword(enc, []byte("another-scramble-xyz"), key); err == nil && got == "pässword" {
		t.Fatal("decrypted with the wrong scramble")
	}
}

func TestErrorPacket(t *testing.T) {
	e := ErrAccessDenied("app", "127.0.0.1", true)
	p := e.AppendPayload(nil)
	back := ParseError(p)
	if back.Code != 1045 || back.State != "28000" || back.Message != "Access denied for user 'app'@'127.0.0.1' (using password: YES)" {
		t.Fatalf("%+v", back)
	}
}

func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0, 1, 2, 3})
	f.Add([]byte{5, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, err := ReadPacket(bufio.NewReader(bytes.NewReader(b)), 1<<16, nil)
		if err == nil && len(p) > len(b) {
			t.Fatalf("payload of %d bytes from %d bytes of input", len(p), len(b))
		}
	})
}

func FuzzParseClientPackets(f *testing.F) {
	r := &HandshakeResponse{Caps: Understood, MaxPacket: 1 << 24, Collation: 45, User: "root", DB: "x", AuthPlugin: NativePassword,
		Attrs: AppendLenEncString(AppendLenEncString(nil, []byte("k")), []byte("v"))}
	f.Add(r.AppendPayload(nil))
	cu := &ChangeUser{User: "u", DB: "d", AuthPlugin: NativePassword}
	f.Add(cu.AppendPayload(nil, Understood))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if resp, err := ParseHandshakeResponse(b); err == nil {
			// Whatever parses re-encodes into something that parses the same.
			again, err := ParseHandshakeResponse(resp.AppendPayload(nil))
			if err != nil || again.User != resp.User || !bytes.Equal(again.AuthResponse, resp.AuthResponse) {
				if len(resp.AuthResponse) < 251 || resp.Caps&ClientPluginAuthLenencClientData != 0 {
					t.Fatalf("re-encoded response does not parse alike: %v", err)
				}
			}
		}
		_, _ = ParseChangeUser(b, Understood)
		_, _ = ParseChangeUser(b, 0)
		_, _ = ParseGreeting(b)
		_, _ = ParseOK(b)
		_ = ParseError(b)
		AttrPairs(b)
	})
}
