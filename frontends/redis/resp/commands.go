package resp

//go:generate go run ./internal/gencommands -addr 127.0.0.1:6379 -out commands_gen.go

import "strings"

// CommandFlag is a Redis command flag, as COMMAND INFO reports it.
type CommandFlag uint32

// Command flags of Redis 7.
const (
	FlagWrite CommandFlag = 1 << iota
	FlagReadonly
	FlagDenyOOM
	FlagModule
	FlagAdmin
	FlagPubsub
	FlagNoscript
	FlagBlocking
	FlagLoading
	FlagStale
	FlagSkipMonitor
	FlagSkipSlowlog
	FlagAsking
	FlagFast
	FlagNoAuth
	FlagMayReplicate
	FlagNoMandatoryKeys
	FlagNoAsyncLoading
	FlagNoMulti
	FlagMovableKeys
	FlagAllowBusy
)

var flagNames = []string{
	"write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
	"blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
	"fast", "no_auth", "may_replicate", "no_mandatory_keys", "no_async_loading",
	"no_multi", "movablekeys", "allow_busy",
}

// Names returns the flags as COMMAND INFO spells them.
func (f CommandFlag) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Category is a Redis ACL category.
type Category uint32

// ACL categories of Redis 7.
const (
	CatKeyspace Category = 1 << iota
	CatRead
	CatWrite
	CatSet
	CatSortedSet
	CatList
	CatHash
	CatString
	CatBitmap
	CatHyperLogLog
	CatGeo
	CatStream
	CatPubsub
	CatAdmin
	CatFast
	CatSlow
	CatBlocking
	CatDangerous
	CatConnection
	CatTransaction
	CatScripting
)

var categoryNames = []string{
	"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
	"bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
	"blocking", "dangerous", "connection", "transaction", "scripting",
}

// Names returns the categories with their '@' prefix.
func (c Category) Names() []string {
	var out []string
	for i, n := range categoryNames {
		if c&(1<<i) != 0 {
			out = append(out, "@"+n)
		}
	}
	return out
}

// CommandInfo describes one Redis command or subcommand.
type CommandInfo struct {
	// Name is the lower-case name; a subcommand is "container|sub".
	Name string
	// Arity is Redis' arity: n means exactly n arguments (name included),
	// -n means at least n.
	Arity      int
	Flags      CommandFlag
	FirstKey   int
	LastKey    int
	Step       int
	Categories Category
	// Subcommands of a container command such as CLIENT or CONFIG.
	Subcommands []*CommandInfo
	// ID is a small dense index, for per-command tables such as metrics.
	ID int

	subs map[string]*CommandInfo
}

// Has reports whether the command has flag f.
func (c *CommandInfo) Has(f CommandFlag) bool { return c.Flags&f != 0 }

// ArityOK reports whether argc arguments (the name included) satisfy the
// command's arity.
func (c *CommandInfo) ArityOK(argc int) bool {
	if c.Arity >= 0 {
		return argc == c.Arity
	}
	return argc >= -c.Arity
}

// Sub returns the subcommand named by arg, or nil.
func (c *CommandInfo) Sub(arg []byte) *CommandInfo {
	if c.subs == nil {
		return nil
	}
	return c.subs[lower(arg)]
}

var (
	commands   = map[string]*CommandInfo{}
	commandsBy []*CommandInfo
)

// laterCommands are subcommands newer than the Redis the table was
// generated from, which Mecha answers itself.
var laterCommands = map[string][]*CommandInfo{
	"client": {
		{Name: "client|setinfo", Arity: 4, Flags: FlagNoscript | FlagLoading | FlagStale, Categories: CatSlow | CatConnection},
		{Name: "client|no-touch", Arity: 3, Flags: FlagNoscript | FlagLoading | FlagStale, Categories: CatSlow | CatConnection},
	},
}

func init() {
	for _, c := range commandTable {
		for _, extra := range laterCommands[c.Name] {
			known := false
			for _, s := range c.Subcommands {
				known = known || s.Name == extra.Name
			}
			if !known {
				c.Subcommands = append(c.Subcommands, extra)
			}
		}
		register(c)
		for _, s := range c.Subcommands {
			register(s)
			if c.subs == nil {
				c.subs = map[string]*CommandInfo{}
			}
			c.subs[s.Name[strings.IndexByte(s.Name, '|')+1:]] = s
		}
		commands[c.Name] = c
	}
}

func register(c *CommandInfo) {
	c.ID = len(commandsBy)
	commandsBy = append(commandsBy, c)
}

// Lookup returns the command named name (any case), or nil.
func Lookup(name []byte) *CommandInfo {
	if len(name) > 32 {
		return nil
	}
	var buf [32]byte
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return commands[string(buf[:len(name)])]
}

// Commands returns every top-level command.
func Commands() []*CommandInfo { return commandTable }

// NumCommandIDs is one more than the largest CommandInfo.ID.
func NumCommandIDs() int { return len(commandsBy) }

// CommandByID returns the command or subcommand with the given ID.
func CommandByID(id int) *CommandInfo { return commandsBy[id] }

func lower(b []byte) string {
	if len(b) > 64 {
		return strings.ToLower(string(b))
	}
	var buf [64]byte
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return string(buf[:len(b)])
}

// EqualFold reports whether b equals the lower-case ASCII word s, ignoring
// case.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
