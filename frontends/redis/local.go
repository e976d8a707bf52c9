package redis

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// local answers a connection command itself, as Redis 7 does.
func (c *conn) local(st *settings, k *cmd) {
	info, ok := c.checkArity(k)
	if !ok {
		return
	}
	switch info.Name {
	case "ping":
		if len(k.args) > 2 {
			c.out = resp.AppendError(c.out, "ERR wrong number of arguments for 'ping' command")
		} else if len(k.args) == 1 {
			c.out = append(c.out, "+PONG\r\n"...)
		} else {
			c.out = resp.AppendBulk(c.out, k.args[1])
		}
	case "echo":
		c.out = resp.AppendBulk(c.out, k.args[1])
	case "quit":
		c.out = resp.AppendOK(c.out)
		c.quit = true
	case "select":
		c.selectDB(st, k)
	case "auth":
		c.auth(st, k)
	case "hello":
		c.hello(st, k)
	case "reset":
		c.reset(st)
	case "info":
		c.info(st, k)
	case "config|get":
		c.configGet(st, k)
	case "config|set", "config|resetstat", "config|rewrite", "config|help":
		c.configKV(st, k, info.Name)
	default:
		if strings.HasPrefix(info.Name, "client|") {
			c.client(st, k, info.Name[len("client|"):])
			return
		}
		c.out = resp.AppendError(c.out, "ERR unknown command")
	}
}

// checkArity finds the (sub)command k names and checks its argument
// count, replying with Redis' error when it is wrong.
func (c *conn) checkArity(k *cmd) (*resp.CommandInfo, bool) {
	info := k.info
	if len(info.Subcommands) > 0 {
		if len(k.args) < 2 {
			c.out = resp.AppendError(c.out, fmt.Sprintf("ERR wrong number of arguments for '%s' command", info.Name))
			return nil, false
		}
		sub := info.Sub(k.args[1])
		if sub == nil {
			c.out = resp.AppendError(c.out, fmt.Sprintf("ERR unknown subcommand '%.128s'. Try %s HELP.", k.args[1], strings.ToUpper(info.Name)))
			return nil, false
		}
		info = sub
	}
	if info.Name == "quit" {
		return info, true // QUIT answers OK whatever follows it
	}
	if !info.ArityOK(len(k.args)) {
		c.out = resp.AppendError(c.out, fmt.Sprintf("ERR wrong number of arguments for '%s' command", info.Name))
		return nil, false
	}
	return info, true
}

func (c *conn) localError(k *cmd, msg string) {
	c.out = resp.AppendError(c.out, msg)
	c.record(k, true, 0)
}

func (c *conn) selectDB(st *settings, k *cmd) {
	db, ok := resp.ParseInt(k.args[1])
	if !ok || db > 1<<31-1 || db < -1<<31 {
		c.out = resp.AppendError(c.out, "ERR value is not an integer or out of range")
		return
	}
	if db < 0 || db >= int64(st.databases()) {
		c.out = resp.AppendError(c.out, "ERR DB index is out of range")
		return
	}
	if c.sess != nil {
		if db != 0 && !st.kv.Has(kv.FeatureMultiDB) {
			c.out = resp.AppendError(c.out, "ERR command 'SELECT' is not supported by backend '"+st.bname+"'")
			return
		}
		c.sess.SetDB(int(db))
	}
	// A held upstream connection follows at its next command.
	c.setDB(int(db))
	c.out = resp.AppendOK(c.out)
}

// authenticate checks credentials against the frontend's own users.
// Without `auth` in the configuration the default user needs no password,
// as in a fresh Redis.
func authenticate(st *settings, user, pass []byte) bool {
	a := st.cfg.Auth
	if a == nil {
		return string(user) == "default"
	}
	var want string
	if string(user) == "default" {
		if a.Password == "" {
			return false
		}
		want = a.Password.Reveal()
	} else {
		w, ok := a.Users[string(user)]
		if !ok {
			// Compare anyway so that timing does not reveal user names.
			subtle.ConstantTimeCompare(pass, []byte("mecha-no-such-user"))
			return false
		}
		want = w.Reveal()
	}
	return subtle.ConstantTimeCompare(pass, []byte(want)) == 1
}

const errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func (c *conn) auth(st *settings, k *cmd) {
	if len(k.args) > 3 {
		c.out = resp.AppendError(c.out, "ERR syntax error")
		return
	}
	user, pass := []byte("default"), k.args[1]
	if len(k.args) == 2 {
		if st.cfg.Auth == nil || st.cfg.Auth.Password == "" && len(st.cfg.Auth.Users) == 0 {
			c.out = resp.AppendError(c.out, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
	} else {
		user, pass = k.args[1], k.args[2]
	}
	if c.login(st, user, pass) {
		c.out = resp.AppendOK(c.out)
	}
}

// login checks credentials and, when they are right, authenticates the
// connection; when wrong it replies WRONGPASS and logs the attempt
// (never the password).
func (c *conn) login(st *settings, user, pass []byte) bool {
	if !authenticate(st, user, pass) {
		c.s.log.Info("client authentication failed", "client", c.raddr, "user", string(user))
		c.out = resp.AppendError(c.out, errWrongPass)
		return false
	}
	c.authed = true
	c.setUser(string(user))
	return true
}

func (c *conn) hello(st *settings, k *cmd) {
	if len(k.args) >= 2 {
		ver, ok := resp.ParseInt(k.args[1])
		if !ok {
			c.out = resp.AppendError(c.out, "ERR Protocol version is not an integer or out of range")
			return
		}
		if ver != 2 {
			// RESP3 is not spoken: clients (go-redis, lettuce) fall back to
			// RESP2 on this exact error.
			c.out = resp.AppendError(c.out, "NOPROTO unsupported protocol version")
			return
		}
	}
	var user, pass, name []byte
	for j := 2; j < len(k.args); j++ {
		more := len(k.args) - 1 - j
		switch {
		case resp.EqualFold(k.args[j], "auth") && more >= 2:
			user, pass = k.args[j+1], k.args[j+2]
			j += 2
		case resp.EqualFold(k.args[j], "setname") && more >= 1:
			name = k.args[j+1]
			j++
		default:
			c.out = resp.AppendError(c.out, fmt.Sprintf("ERR Syntax error in HELLO option '%s'", k.args[j]))
			return
		}
	}
	if user != nil && !c.login(st, user, pass) {
		return
	}
	if !c.authed {
		c.out = resp.AppendError(c.out, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil && !c.setName(name) {
		return
	}
	c.out = resp.AppendArray(c.out, 14)
	for _, kv := range [][2]string{{"server", "redis"}, {"version", st.version()}} {
		c.out = resp.AppendBulkString(c.out, kv[0])
		c.out = resp.AppendBulkString(c.out, kv[1])
	}
	c.out = resp.AppendBulkString(c.out, "proto")
	c.out = resp.AppendInt(c.out, 2)
	c.out = resp.AppendBulkString(c.out, "id")
	c.out = resp.AppendInt(c.out, c.id)
	for _, kv := range [][2]string{{"mode", "standalone"}, {"role", "master"}} {
		c.out = resp.AppendBulkString(c.out, kv[0])
		c.out = resp.AppendBulkString(c.out, kv[1])
	}
	c.out = resp.AppendBulkString(c.out, "modules")
	c.out = resp.AppendArray(c.out, 0)
}

// validAttr reports whether a client name or library attribute has only
// printable, non-space ASCII, as Redis requires.
func validAttr(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *conn) setName(name []byte) bool {
	if !validAttr(name) {
		c.out = resp.AppendError(c.out, "ERR Client names cannot contain spaces, newlines or special characters.")
		return false
	}
	c.infoMu.Lock()
	c.name = string(name)
	c.infoMu.Unlock()
	return true
}

func (c *conn) reset(st *settings) {
	if c.sess != nil {
		c.sess.Reset(c.ctx())
	}
	if c.pin != nil {
		// The upstream connection may hold a transaction, WATCHed keys or
		// tracking: close it rather than undo each.
		c.pin.up.Release(false)
		c.pin = nil
	}
	c.setDB(0)
	c.replyOff, c.skipReply = false, false
	c.authed = !st.authNeed
	c.setUser("default")
	c.infoMu.Lock()
	c.name = ""
	c.infoMu.Unlock()
	c.out = append(c.out, "+RESET\r\n"...)
}

func (c *conn) client(st *settings, k *cmd, sub string) {
	switch sub {
	case "id":
		c.out = resp.AppendInt(c.out, c.id)
	case "getname":
		c.infoMu.Lock()
		name := c.name
		c.infoMu.Unlock()
		if name == "" {
			c.out = resp.AppendNull(c.out)
		} else {
			c.out = resp.AppendBulkString(c.out, name)
		}
	case "setname":
		if c.setName(k.args[2]) {
			c.out = resp.AppendOK(c.out)
		}
	case "setinfo":
		attr := k.args[2]
		var dst *string
		switch {
		case resp.EqualFold(attr, "lib-name"):
			dst = &c.libName
		case resp.EqualFold(attr, "lib-ver"):
			dst = &c.libVer
		default:
			c.out = resp.AppendError(c.out, fmt.Sprintf("ERR Unrecognized option '%s'", attr))
			return
		}
		if !validAttr(k.args[3]) {
			c.out = resp.AppendError(c.out, fmt.Sprintf("ERR %s cannot contain spaces, newlines or special characters.", attr))
			return
		}
		c.infoMu.Lock()
		*dst = string(k.args[3])
		c.infoMu.Unlock()
		c.out = resp.AppendOK(c.out)
	case "info":
		c.out = resp.AppendBulkString(c.out, c.describe(time.Now())+"\n")
	case "list":
		c.clientList(k)
	case "kill":
		c.clientKill(st, k)
	case "reply":
		switch {
		case resp.EqualFold(k.args[2], "on"):
			c.replyOff, c.skipReply = false, false
			c.out = resp.AppendOK(c.out)
		case resp.EqualFold(k.args[2], "off"):
			c.replyOff = true
		case resp.EqualFold(k.args[2], "skip"):
			// The next command's reply is dropped; this one has none.
			if !c.replyOff {
				c.skipReply = true
			}
		default:
			c.out = resp.AppendError(c.out, "ERR syntax error")
		}
	case "unblock":
		c.clientUnblock(st, k)
	case "help":
		c.out = resp.AppendArray(c.out, len(clientHelp))
		for _, l := range clientHelp {
			c.out = resp.AppendSimple(c.out, l)
		}
	default:
		c.out = resp.AppendError(c.out, fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", k.args[1]))
	}
}

var clientHelp = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GETNAME", "    Return the name of the current connection.",
	"ID", "    Return the ID of the current connection.",
	"INFO", "    Return information about the current client connection.",
	"KILL <ip:port>", "    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are:",
	"    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
	"    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
	"    * USER <username>", "      Kill connections authenticated by <username>.",
	"    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
	"LIST [options ...]", "    Return information about client connections. Options:",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Return clients of specified type.",
	"UNPAUSE", "    Stop the current client pause, resuming traffic.",
	"PAUSE <timeout> [WRITE|ALL]", "    Suspend all, or just write, clients for <timeout> milliseconds.",
	"REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
	"SETNAME <name>", "    Assign the name <name> to the current connection.",
	"SETINFO <option> <value>", "    Set client meta attr. Options are:",
	"    * LIB-NAME: the client lib name.", "    * LIB-VER: the client lib version.",
	"UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
	"TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
	"         [OPTIN] [OPTOUT] [NOLOOP]", "    Control server assisted client side caching.",
	"TRACKINGINFO", "    Report tracking status for the current connection.",
	"NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
	"HELP", "    Prints this help.",
}

// describe formats the connection as a CLIENT LIST line.
func (c *conn) describe(now time.Time) string {
	c.infoMu.Lock()
	name, libName, libVer := c.name, c.libName, c.libVer
	c.infoMu.Unlock()
	mode := c.mode.Load()
	flags := "N"
	sub := 0
	switch mode {
	case modeBlocked:
		flags = "b"
	case modeDuplex:
		flags = "P"
		sub = 1
	}
	cmdName := "NULL"
	if id := c.lastCmd.Load(); id >= 0 {
		cmdName = "unknown"
		if int(id) < resp.NumCommandIDs() {
			cmdName = resp.CommandByID(int(id)).Name
		}
	}
	age := int64(now.Sub(c.created) / time.Second)
	idle := int64(now.Sub(time.Unix(0, c.lastActive.Load())) / time.Second)
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=%d sub=%d psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=%d rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=%s redir=-1 resp=2 lib-name=%s lib-ver=%s",
		c.id, c.raddr, c.laddr, name, age, idle, flags, c.dbShared.Load(), sub, initialBuffer, cmdName, c.userName(), libName, libVer)
}

func (c *conn) setUser(u string) {
	c.infoMu.Lock()
	c.user = u
	c.infoMu.Unlock()
}

func (c *conn) userName() string {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.user
}

func (c *conn) clientList(k *cmd) {
	var typ string
	var ids map[int64]bool
	for j := 2; j < len(k.args); j++ {
		switch {
		case resp.EqualFold(k.args[j], "type") && j+1 < len(k.args):
			t := strings.ToLower(string(k.args[j+1]))
			switch t {
			case "normal", "pubsub", "master", "replica", "slave":
			default:
				c.out = resp.AppendError(c.out, fmt.Sprintf("ERR Unknown client type '%s'", k.args[j+1]))
				return
			}
			typ = t
			j++
		case resp.EqualFold(k.args[j], "id") && j+1 < len(k.args):
			ids = map[int64]bool{}
			for j++; j < len(k.args); j++ {
				id, ok := resp.ParseInt(k.args[j])
				if !ok || id <= 0 {
					c.out = resp.AppendError(c.out, "ERR Invalid client ID")
					return
				}
				ids[id] = true
			}
		default:
			c.out = resp.AppendError(c.out, "ERR syntax error")
			return
		}
	}
	now := time.Now()
	var b strings.Builder
	for _, o := range c.s.clients() {
		if ids != nil && !ids[o.id] {
			continue
		}
		if typ != "" && typ != o.clientType() {
			continue
		}
		b.WriteString(o.describe(now))
		b.WriteByte('\n')
	}
	c.out = resp.AppendBulkString(c.out, b.String())
}

func (c *conn) clientType() string {
	if c.mode.Load() == modeDuplex {
		return "pubsub"
	}
	return "normal"
}

func (c *conn) clientKill(st *settings, k *cmd) {
	if len(k.args) == 3 {
		// Old form: CLIENT KILL addr:port.
		for _, o := range c.s.clients() {
			if o.raddr == string(k.args[2]) {
				c.killClient(o)
				c.out = resp.AppendOK(c.out)
				return
			}
		}
		c.out = resp.AppendError(c.out, "ERR No such client")
		return
	}
	if len(k.args)%2 != 0 {
		c.out = resp.AppendError(c.out, "ERR syntax error")
		return
	}
	var (
		id            int64
		addr, laddr   string
		typ, user     string
		skipme        = true
		haveUserMatch bool
	)
	for j := 2; j < len(k.args); j += 2 {
		opt, val := k.args[j], k.args[j+1]
		switch {
		case resp.EqualFold(opt, "id"):
			v, ok := resp.ParseInt(val)
			if !ok || v <= 0 {
				c.out = resp.AppendError(c.out, "ERR client-id should be greater than 0")
				return
			}
			id = v
		case resp.EqualFold(opt, "type"):
			t := strings.ToLower(string(val))
			switch t {
			case "normal", "pubsub", "master", "replica", "slave":
			default:
				c.out = resp.AppendError(c.out, fmt.Sprintf("ERR Unknown client type '%s'", val))
				return
			}
			typ = t
		case resp.EqualFold(opt, "addr"):
			addr = string(val)
		case resp.EqualFold(opt, "laddr"):
			laddr = string(val)
		case resp.EqualFold(opt, "user"):
			user = string(val)
			if user != "default" && (st.cfg.Auth == nil || st.cfg.Auth.Users[user] == "") {
				c.out = resp.AppendError(c.out, fmt.Sprintf("ERR No such user '%s'", val))
				return
			}
			haveUserMatch = true
		case resp.EqualFold(opt, "skipme"):
			switch {
			case resp.EqualFold(val, "yes"):
				skipme = true
			case resp.EqualFold(val, "no"):
				skipme = false
			default:
				c.out = resp.AppendError(c.out, "ERR syntax error")
				return
			}
		default:
			c.out = resp.AppendError(c.out, "ERR syntax error")
			return
		}
	}
	killed := 0
	for _, o := range c.s.clients() {
		switch {
		case id != 0 && o.id != id,
			addr != "" && o.raddr != addr,
			laddr != "" && o.laddr != laddr,
			typ != "" && o.clientType() != typ,
			haveUserMatch && o.userName() != user,
			o == c && skipme:
			continue
		}
		c.killClient(o)
		killed++
	}
	c.out = resp.AppendInt(c.out, int64(killed))
}

// killClient closes another client, or this one once its reply is out.
func (c *conn) killClient(o *conn) {
	if o == c {
		c.quit = true
		return
	}
	o.kill()
}

func (c *conn) clientUnblock(st *settings, k *cmd) {
	id, ok := resp.ParseInt(k.args[2])
	if !ok {
		c.out = resp.AppendError(c.out, "ERR value is not an integer or out of range")
		return
	}
	reason := "TIMEOUT"
	if len(k.args) == 4 {
		switch {
		case resp.EqualFold(k.args[3], "timeout"):
		case resp.EqualFold(k.args[3], "error"):
			reason = "ERROR"
		default:
			c.out = resp.AppendError(c.out, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
			return
		}
	} else if len(k.args) > 4 {
		c.out = resp.AppendError(c.out, "ERR syntax error")
		return
	}
	var upID int64
	home := st.backend
	for _, o := range c.s.clients() {
		if o.id == id && o.mode.Load() == modeBlocked {
			if o.sess != nil {
				c.out = resp.AppendInt(c.out, int64(boolInt(o.unblockKV(reason == "ERROR"))))
				return
			}
			upID = o.blockedOn.Load()
			if h := o.blockedHome.Load(); h != nil {
				home = h.b
			}
		}
	}
	if upID == 0 {
		c.out = resp.AppendInt(c.out, 0)
		return
	}
	// The blocked client waits on an upstream connection of its own: ask
	// the upstream to unblock that one; its reply reaches the client.
	v, err := askBackend(c.ctx(), home, "CLIENT", "UNBLOCK", strconv.FormatInt(upID, 10), reason)
	if err != nil {
		c.out = resp.AppendError(c.out, c.backendError(st, err))
		return
	}
	c.out = resp.AppendValue(c.out, v)
}

// ask sends one command of Mecha's own to the backend and decodes the
// reply.
func (c *conn) ask(st *settings, args ...string) (resp.Value, error) {
	out, err := backends.Exchange(c.ctx(), st.backend, c.db, resp.AppendCommandStrings(nil, args...), 1)
	if err != nil {
		return resp.Value{}, err
	}
	v, _, err := resp.DecodeValue(out)
	return v, err
}

// askBackend sends one command of Mecha's own to b in database 0.
func askBackend(ctx context.Context, b backends.RESPPassthrough, args ...string) (resp.Value, error) {
	out, err := backends.Exchange(ctx, b, 0, resp.AppendCommandStrings(nil, args...), 1)
	if err != nil {
		return resp.Value{}, err
	}
	v, _, err := resp.DecodeValue(out)
	return v, err
}

// configGet answers CONFIG GET from the upstream's configuration, with
// the parameters the frontend owns (client limits) reported as the
// frontend enforces them. An upstream that refuses CONFIG (managed
// services often do) leaves only those and a few clients ask for.
func (c *conn) configGet(st *settings, k *cmd) {
	args := []string{"CONFIG", "GET"}
	for _, a := range k.args[2:] {
		args = append(args, string(a))
	}
	local := c.localConfig(st)
	var pairs [][2][]byte
	if st.kv != nil {
		for _, p := range st.kv.Config(func(name string) bool {
			for _, pat := range k.args[2:] {
				if resp.Match(pat, []byte(name), true) {
					return true
				}
			}
			return false
		}) {
			pairs = append(pairs, [2][]byte{[]byte(p[0]), []byte(p[1])})
		}
	} else if v, err := c.ask(st, args...); err == nil && v.Type == '*' && len(v.Array)%2 == 0 {
		for i := 0; i+1 < len(v.Array); i += 2 {
			pairs = append(pairs, [2][]byte{v.Array[i].Str, v.Array[i+1].Str})
		}
	}
	seen := map[string]bool{}
	for i := range pairs {
		name := string(pairs[i][0])
		seen[name] = true
		if val, ok := local.owned[name]; ok {
			pairs[i][1] = []byte(val)
		}
	}
	for _, name := range local.order {
		if seen[name] {
			continue
		}
		if _, owned := local.owned[name]; !owned && len(pairs) > 0 {
			continue // the upstream answered; fallbacks are not needed
		}
		for _, p := range k.args[2:] {
			if resp.Match(p, []byte(name), true) {
				pairs = append(pairs, [2][]byte{[]byte(name), []byte(local.all[name])})
				seen[name] = true
				break
			}
		}
	}
	c.out = resp.AppendArray(c.out, 2*len(pairs))
	for _, p := range pairs {
		c.out = resp.AppendBulk(c.out, p[0])
		c.out = resp.AppendBulk(c.out, p[1])
	}
}

type localConfig struct {
	owned map[string]string // parameters the frontend enforces
	all   map[string]string // owned plus fallbacks
	order []string
}

func (c *conn) localConfig(st *settings) localConfig {
	l := st.cfg.Limits
	owned := map[string]string{
		"maxclients":                strconv.Itoa(l.MaxClients),
		"proto-max-bulk-len":        strconv.FormatInt(int64(l.MaxBulkLen), 10),
		"client-query-buffer-limit": strconv.FormatInt(int64(l.MaxQueryBuffer), 10),
		"timeout":                   strconv.FormatInt(int64(st.cfg.IdleTimeout.D()/time.Second), 10),
	}
	all := map[string]string{"save": "", "appendonly": "no", "databases": strconv.Itoa(st.databases())}
	for k, v := range owned {
		all[k] = v
	}
	return localConfig{owned: owned, all: all, order: []string{"appendonly", "client-query-buffer-limit", "databases", "maxclients", "proto-max-bulk-len", "save", "timeout"}}
}

// info answers INFO: the upstream's sections, with Server and Clients
// describing Mecha's frontend, which is what the client is connected to.
func (c *conn) info(st *settings, k *cmd) {
	args := []string{"INFO"}
	for _, a := range k.args[1:] {
		args = append(args, string(a))
	}
	want := map[string]bool{}
	for _, a := range k.args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	var upstream []byte
	if st.kv != nil {
		upstream = []byte(strings.Join(st.kv.InfoSections(c.ctx(), want), "\r\n"))
	} else if v, err := c.ask(st, args...); err == nil && v.Type == '$' && !v.Null {
		upstream = v.Str
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var b bytes.Buffer
	if all || want["server"] {
		c.infoServer(st, &b)
	}
	if all || want["clients"] {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		c.infoClients(st, &b)
	}
	for _, sec := range splitSections(upstream) {
		if sec.name == "server" || sec.name == "clients" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.Write(sec.body)
	}
	c.out = resp.AppendBulk(c.out, b.Bytes())
}

type infoSection struct {
	name string
	body []byte
}

// splitSections splits INFO text into its "# Name" sections.
func splitSections(text []byte) []infoSection {
	var out []infoSection
	for _, part := range bytes.Split(text, []byte("\r\n\r\n")) {
		part = bytes.TrimRight(part, "\r\n")
		if len(part) < 2 || part[0] != '#' {
			continue
		}
		line := part
		if i := bytes.Index(part, []byte("\r\n")); i >= 0 {
			line = part[:i]
		}
		name := strings.ToLower(strings.TrimSpace(string(line[1:])))
		out = append(out, infoSection{name: name, body: append(part, '\r', '\n')})
	}
	return out
}

var runID = newRunID()

func newRunID() string {
	t := barrierToken[len(barrierToken)-32:]
	return t + t[:8]
}

func (c *conn) infoServer(st *settings, b *bytes.Buffer) {
	now := time.Now()
	up := now.Sub(c.s.start)
	_, port, _ := strings.Cut(c.s.addr.String(), "]:")
	if port == "" {
		if i := strings.LastIndexByte(c.s.addr.String(), ':'); i >= 0 {
			port = c.s.addr.String()[i+1:]
		}
	}
	lines := []string{
		"# Server",
		"redis_version:" + st.version(),
		"redis_git_sha1:00000000",
		"redis_git_dirty:0",
		"redis_build_id:0",
		"redis_mode:standalone",
		"os:" + osName,
		"arch_bits:64",
		"multiplexing_api:epoll",
		"process_id:" + strconv.Itoa(pid),
		"process_supervised:no",
		"run_id:" + runID,
		"tcp_port:" + port,
		"server_time_usec:" + strconv.FormatInt(now.UnixMicro(), 10),
		"uptime_in_seconds:" + strconv.FormatInt(int64(up/time.Second), 10),
		"uptime_in_days:" + strconv.FormatInt(int64(up/(24*time.Hour)), 10),
		"hz:10",
		"configured_hz:10",
		"executable:" + executable,
		"mecha_version:" + c.s.version,
		"mecha_frontend:" + c.s.name,
		"mecha_backend:" + st.bname,
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
}

func (c *conn) infoClients(st *settings, b *bytes.Buffer) {
	lines := []string{
		"# Clients",
		"connected_clients:" + strconv.FormatInt(c.s.nclients.Load(), 10),
		"cluster_connections:0",
		"maxclients:" + strconv.Itoa(st.cfg.Limits.MaxClients),
		"client_recent_max_input_buffer:0",
		"client_recent_max_output_buffer:0",
		"blocked_clients:" + strconv.FormatInt(c.s.blocked.Load(), 10),
		"tracking_clients:0",
		"clients_in_timeout_table:" + strconv.FormatInt(c.s.blocked.Load(), 10),
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// configKV answers CONFIG SET, RESETSTAT, REWRITE and HELP for a store
// served through the translation layer (a Redis upstream answers them
// itself).
func (c *conn) configKV(st *settings, k *cmd, sub string) {
	switch sub {
	case "config|set":
		if len(k.args)%2 != 0 {
			c.out = resp.AppendError(c.out, "ERR wrong number of arguments for 'config|set' command")
			return
		}
		for i := 2; i < len(k.args); i += 2 {
			name := strings.ToLower(string(k.args[i]))
			ok, err := st.kv.SetConfig(name, string(k.args[i+1]))
			switch {
			case !ok:
				c.out = resp.AppendError(c.out, fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", k.args[i]))
				return
			case err != nil:
				c.out = resp.AppendError(c.out, fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %v", k.args[i], err))
				return
			}
		}
		c.out = resp.AppendOK(c.out)
	case "config|resetstat":
		c.out = resp.AppendOK(c.out)
	case "config|rewrite":
		c.out = resp.AppendError(c.out, "ERR The server is running without a config file")
	default:
		help := []string{
			"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>", "    Set the configuration <directive> to <value>.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"REWRITE", "    Rewrite the configuration file.",
			"HELP", "    Prints this help.",
		}
		c.out = resp.AppendArray(c.out, len(help))
		for _, l := range help {
			c.out = resp.AppendSimple(c.out, l)
		}
	}
}
