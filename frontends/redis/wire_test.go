package redis_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestWireMatchesRedis sends the same bytes to Redis itself and to Mecha
// in front of it, and expects the same bytes back: framing, edge cases of
// the protocol, and the error texts of commands Mecha answers locally.
func TestWireMatchesRedis(t *testing.T) {
	g := startGateway(t, "", "")
	// Replies that carry per-connection ids are compared with the ids
	// masked.
	ids := regexp.MustCompile(`(\$2\r\nid\r\n:)\d+`)
	tests := []struct{ name, input string }{
		{"ping", "PING\r\nPING hello\r\n*2\r\n$4\r\nPING\r\n$0\r\n\r\n"},
		{"ping arity", "PING a b\r\n"},
		{"echo", "ECHO hi\r\nECHO\r\nECHO a b\r\n"},
		{"empty and zero commands", "*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\n\r\n\r\nPING\r\n"},
		{"inline quoting", `ECHO "a b\x41\n" 'c\'d'` + "\r\nECHO \"\"\r\n"},
		{"unbalanced quotes", "PING\r\nPING \"a\r\nPING\r\n"},
		{"expected dollar", "PING\r\n*1\r\nx\r\n"},
		{"invalid bulk length", "*1\r\n$-1\r\n"},
		{"bulk leading zero", "*1\r\n$04\r\nPING\r\n"},
		{"invalid multibulk length", "PING\r\n*a\r\n"},
		{"lax separators", "*1\rx$4\r\nPING\r\n*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n"},
		{"select", "SELECT abc\r\nSELECT 16\r\nSELECT -1\r\nSELECT\r\nSELECT 1\r\nSELECT 0\r\n"},
		{"auth without password", "AUTH a\r\nAUTH a b\r\nAUTH a b c\r\nAUTH default anything\r\n"},
		{"hello", "HELLO 3x\r\nHELLO 4\r\nHELLO 1\r\nHELLO 2 FOO\r\nHELLO 2 AUTH a\r\nHELLO 2 SETNAME\r\nHELLO 2 SETNAME a b\r\nHELLO 2 SETNAME x\r\nCLIENT GETNAME\r\nHELLO\r\n"},
		{"client errors", "CLIENT\r\nCLIENT FOO\r\nCLIENT SETNAME\r\nCLIENT SETNAME 'a b'\r\nCLIENT GETNAME x\r\nCLIENT ID x\r\nCLIENT REPLY\r\nCLIENT REPLY FOO\r\n"},
		{"client names", "CLIENT GETNAME\r\nCLIENT SETNAME app-1\r\nCLIENT GETNAME\r\nCLIENT SETNAME \"\"\r\nCLIENT GETNAME\r\n"},
		{"client kill errors", "CLIENT KILL 1.2.3.4:5\r\nCLIENT KILL ID abc\r\nCLIENT KILL FOO bar\r\nCLIENT KILL ID 999999\r\nCLIENT LIST TYPE foo\r\nCLIENT LIST ID a\r\n"},
		{"client unblock errors", "CLIENT UNBLOCK a\r\nCLIENT UNBLOCK 999999 foo\r\nCLIENT UNBLOCK 999999\r\n"},
		{"client reply", "CLIENT REPLY OFF\r\nSET wire:a 1\r\nPING\r\nCLIENT REPLY ON\r\nGET wire:a\r\nCLIENT REPLY SKIP\r\nSET wire:a 2\r\nGET wire:a\r\n"},
		{"config get", "CONFIG GET\r\nCONFIG GET save appendonly\r\nCONFIG FOO\r\n"},
		{"quit", "PING\r\nQUIT x\r\nPING\r\n"},
		{"reset", "RESET x\r\nSELECT 2\r\nCLIENT SETNAME n\r\nRESET\r\nCLIENT GETNAME\r\n"},
		{"unknown command", "FOO a b\r\nGET\r\nEXEC\r\nDISCARD\r\n"},
		{"data commands", "DEL wire:k wire:l\r\nSET wire:k v\r\nGET wire:k\r\nINCR wire:k\r\nLPUSH wire:l a b\r\nLRANGE wire:l 0 -1\r\nTYPE wire:l\r\nDEL wire:k wire:l\r\n"},
		{"transaction", "DEL wire:t\r\nMULTI\r\nINCR wire:t\r\nSELECT 1\r\nPING\r\nEXEC\r\nSET wire:t 1\r\nSELECT 0\r\nGET wire:t\r\nSELECT 1\r\nGET wire:t\r\nDEL wire:t\r\nSELECT 0\r\nDEL wire:t\r\n"},
		{"transaction errors", "MULTI\r\nMULTI\r\nWATCH x\r\nNOSUCH\r\nEXEC\r\nEXEC\r\nDISCARD\r\n"},
		{"subscribed mode", "SUBSCRIBE wire:a\r\nGET x\r\nPING\r\nPING y\r\nCLIENT ID\r\nSELECT 1\r\nPSUBSCRIBE wire:*\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPING\r\nECHO hi\r\n"},
		{"blocking timeout", "DEL wire:bl\r\nBLPOP wire:bl 0.1\r\nPING\r\n"},
		{"lua", "EVAL \"return {1,'two',redis.call('ping')}\" 0\r\nEVAL \"return redis.error_reply('boom')\" 0\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := exchange(t, g.redis.Addr(), tt.input)
			got := exchange(t, g.addr, tt.input)
			want = ids.ReplaceAllString(want, "${1}ID")
			got = ids.ReplaceAllString(got, "${1}ID")
			// Mecha reports the upstream's version; CLIENT IDs are
			// Mecha's own.
			if got != want {
				t.Fatalf("input %q\n mecha: %q\n redis: %q", tt.input, got, want)
			}
		})
	}
}

// TestProtocolErrorCloses checks that a malformed request ends the
// connection after the replies to the commands before it, as Redis does.
func TestProtocolErrorCloses(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	cl.Write("PING\r\n*1\r\n$x\r\n")
	if r := cl.Reply(); r != "+PONG\r\n" {
		t.Fatalf("first reply %q", r)
	}
	if r := cl.Reply(); r != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("error reply %q", r)
	}
	if !cl.Closed() {
		t.Fatal("connection still open after a protocol error")
	}
}

func TestHello3FallsBack(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	if r := cl.Do("HELLO", "3"); r != "-NOPROTO unsupported protocol version\r\n" {
		t.Fatalf("HELLO 3 = %q", r)
	}
	r := cl.Do("HELLO", "2", "SETNAME", "svc")
	if !strings.HasPrefix(r, "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n") || !strings.Contains(r, "$5\r\nproto\r\n:2\r\n") {
		t.Fatalf("HELLO 2 = %q", r)
	}
	if r := cl.Do("CLIENT", "GETNAME"); r != bulk("svc") {
		t.Fatalf("name after HELLO SETNAME = %q", r)
	}
}

func TestInfoLinesEndWithCRLF(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	r := cl.Do("INFO")
	body := r[strings.Index(r, "\r\n")+2 : len(r)-2]
	for _, want := range []string{"# Server\r\n", "redis_version:", "# Clients\r\n", "connected_clients:", "# Memory\r\n", "# Keyspace\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	for _, line := range strings.SplitAfter(body, "\n") {
		if line != "" && !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("INFO line %q does not end with CRLF", line)
		}
	}
	// A single section.
	r = cl.Do("INFO", "clients")
	if !strings.Contains(r, "# Clients\r\nconnected_clients:") || strings.Contains(r, "# Server") {
		t.Fatalf("INFO clients = %q", r)
	}
}

func TestConfigGetReportsFrontendLimits(t *testing.T) {
	g := startGateway(t, "limits: {max_clients: 77, max_bulk_len: 1mb}", "")
	cl := dial(t, g.addr)
	r := cl.Do("CONFIG", "GET", "maxclients")
	if r != "*2\r\n"+bulk("maxclients")+bulk("77") {
		t.Fatalf("maxclients = %q", r)
	}
	r = cl.Do("CONFIG", "GET", "proto-max-bulk-len")
	if r != "*2\r\n"+bulk("proto-max-bulk-len")+bulk("1048576") {
		t.Fatalf("proto-max-bulk-len = %q", r)
	}
	// What the frontend does not own comes from the upstream.
	if r := cl.Do("CONFIG", "GET", "hz"); !strings.Contains(r, bulk("hz")) {
		t.Fatalf("hz = %q", r)
	}
}
