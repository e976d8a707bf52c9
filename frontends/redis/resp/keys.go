package resp

// Keys appends to dst the arguments of args (a whole command, its name
// first) that are keys, as Redis Cluster finds them to route a command:
// from the command's key positions, or, for commands whose keys move
// (numkeys arguments, STREAMS, STORE options), by reading the arguments
// the way Redis' key-spec functions do. info is Lookup(args[0]); a
// container command's subcommand is resolved here. A malformed command
// yields the keys found so far: Redis itself rejects it.
func Keys(info *CommandInfo, args [][]byte, dst [][]byte) [][]byte {
	if info == nil || len(args) == 0 {
		return dst
	}
	if len(info.Subcommands) > 0 {
		if len(args) < 2 {
			return dst
		}
		if info = info.Sub(args[1]); info == nil {
			return dst
		}
	}
	if info.Has(FlagMovableKeys) {
		return movableKeys(info.Name, args, dst)
	}
	return positional(info.FirstKey, info.LastKey, info.Step, args, dst)
}

// positional appends the keys at first, first+step, ... last (negative
// last counts from the end, -1 being the last argument).
func positional(first, last, step int, args [][]byte, dst [][]byte) [][]byte {
	if first <= 0 || step <= 0 {
		return dst
	}
	if last < 0 {
		last += len(args)
	}
	for i := first; i <= last && i < len(args); i += step {
		dst = append(dst, args[i])
	}
	return dst
}

// movableKeys handles the commands flagged movablekeys in Redis 7.
func movableKeys(name string, args [][]byte, dst [][]byte) [][]byte {
	switch name {
	case "sintercard", "zdiff", "zinter", "zintercard", "zunion", "lmpop", "zmpop":
		return numKeys(args, 1, dst)
	case "blmpop", "bzmpop", "eval", "eval_ro", "evalsha", "evalsha_ro", "fcall", "fcall_ro":
		return numKeys(args, 2, dst)
	case "zdiffstore", "zinterstore", "zunionstore":
		dst = append(dst, args[1])
		return numKeys(args, 2, dst)
	case "georadius", "georadiusbymember", "sort", "sort_ro":
		dst = append(dst, args[1])
		first := 2
		if name == "georadius" {
			first = 5 // key longitude latitude radius unit
		} else if name == "georadiusbymember" {
			first = 4 // key member radius unit
		}
		for i := first; i+1 < len(args); i++ {
			if EqualFold(args[i], "store") || (name[0] == 'g' && EqualFold(args[i], "storedist")) {
				dst = append(dst, args[i+1])
				i++
			}
		}
		return dst
	case "migrate":
		// MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
		// [AUTH2 user pw] [KEYS key ...]
		if len(args) > 3 && len(args[3]) > 0 {
			return append(dst, args[3])
		}
		for i := 6; i < len(args); i++ {
			switch {
			case EqualFold(args[i], "auth"):
				i++
			case EqualFold(args[i], "auth2"):
				i += 2
			case EqualFold(args[i], "keys"):
				return append(dst, args[i+1:]...)
			}
		}
		return dst
	case "xread", "xreadgroup":
		// The arguments after STREAMS are keys then as many ids.
		for i := 1; i < len(args); i++ {
			if EqualFold(args[i], "streams") {
				rest := args[i+1:]
				return append(dst, rest[:len(rest)/2]...)
			}
		}
		return dst
	}
	return dst
}

// numKeys appends the keys counted by the numkeys argument at args[at].
func numKeys(args [][]byte, at int, dst [][]byte) [][]byte {
	if at >= len(args) {
		return dst
	}
	n, ok := ParseInt(args[at])
	if !ok || n <= 0 || n > int64(len(args)-at-1) {
		return dst
	}
	return append(dst, args[at+1:at+1+int(n)]...)
}
