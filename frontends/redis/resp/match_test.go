package resp

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		nocase     bool
		want       bool
	}{
		{"*", "", false, true},
		{"*", "anything", false, true},
		{"h?llo", "hello", false, true},
		{"h?llo", "hllo", false, false},
		{"h*llo", "heeeello", false, true},
		{"h[ae]llo", "hallo", false, true},
		{"h[ae]llo", "hillo", false, false},
		{"h[^e]llo", "hallo", false, true},
		{"h[^e]llo", "hello", false, false},
		{"h[a-b]llo", "hbllo", false, true},
		{"h[b-a]llo", "hallo", false, true},
		{`h\*llo`, "h*llo", false, true},
		{`h\*llo`, "hello", false, false},
		{"maxmemory*", "maxmemory-policy", false, true},
		{"MAXCLIENTS", "maxclients", true, true},
		{"MAXCLIENTS", "maxclients", false, false},
		{"a*b*c", "aXXbYYc", false, true},
		{"a*b*c", "aXXbYY", false, false},
		{"user:*:name", "user:42:name", false, true},
	}
	for _, tt := range tests {
		if got := Match([]byte(tt.pattern), []byte(tt.s), tt.nocase); got != tt.want {
			t.Errorf("Match(%q, %q, %v) = %v, want %v", tt.pattern, tt.s, tt.nocase, got, tt.want)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"get", "GET", "gEt"} {
		c := Lookup([]byte(name))
		if c == nil || c.Name != "get" || c.Arity != 2 || !c.Has(FlagReadonly) {
			t.Fatalf("Lookup(%q) = %+v", name, c)
		}
	}
	if Lookup([]byte("nosuchcommand")) != nil {
		t.Fatal("unknown command found")
	}
	client := Lookup([]byte("CLIENT"))
	if client.Sub([]byte("SetInfo")) == nil || client.Sub([]byte("setname")).Arity != 3 {
		t.Fatal("CLIENT subcommands missing")
	}
	if !Lookup([]byte("blpop")).Has(FlagBlocking) {
		t.Fatal("BLPOP not blocking")
	}
}
