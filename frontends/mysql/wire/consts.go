// Package wire is the MySQL client/server protocol at the packet level:
// framing, length-encoded values, the handshake and authentication
// packets, OK and ERR packets, shared by the MySQL frontend and by the
// backends that connect to MySQL servers. It allocates nothing per packet
// on the paths that relay result sets.
package wire

// Capability flags (CLIENT_*).
const (
	ClientLongPassword               uint32 = 1 << 0
	ClientFoundRows                  uint32 = 1 << 1
	ClientLongFlag                   uint32 = 1 << 2
	ClientConnectWithDB              uint32 = 1 << 3
	ClientNoSchema                   uint32 = 1 << 4
	ClientCompress                   uint32 = 1 << 5
	ClientODBC                       uint32 = 1 << 6
	ClientLocalFiles                 uint32 = 1 << 7
	ClientIgnoreSpace                uint32 = 1 << 8
	ClientProtocol41                 uint32 = 1 << 9
	ClientInteractive                uint32 = 1 << 10
	ClientSSL                        uint32 = 1 << 11
	ClientIgnoreSigpipe              uint32 = 1 << 12
	ClientTransactions               uint32 = 1 << 13
	ClientReserved                   uint32 = 1 << 14
	ClientSecureConnection           uint32 = 1 << 15
	ClientMultiStatements            uint32 = 1 << 16
	ClientMultiResults               uint32 = 1 << 17
	ClientPSMultiResults             uint32 = 1 << 18
	ClientPluginAuth                 uint32 = 1 << 19
	ClientConnectAttrs               uint32 = 1 << 20
	ClientPluginAuthLenencClientData uint32 = 1 << 21
	ClientCanHandleExpiredPasswords  uint32 = 1 << 22
	ClientSessionTrack               uint32 = 1 << 23
	ClientDeprecateEOF               uint32 = 1 << 24
	ClientOptionalResultsetMetadata  uint32 = 1 << 25
	ClientQueryAttributes            uint32 = 1 << 27
	ClientSSLVerifyServerCert        uint32 = 1 << 30
	ClientRememberOptions            uint32 = 1 << 31
)

// Understood is every capability whose effect on the wire this package
// and the relay understand. Others (compression, optional result-set
// metadata, query attributes, MariaDB's extended capabilities) are never
// announced, so neither side may use them.
const Understood = ClientLongPassword | ClientFoundRows | ClientLongFlag | ClientConnectWithDB |
	ClientNoSchema | ClientODBC | ClientLocalFiles | ClientIgnoreSpace | ClientProtocol41 |
	ClientInteractive | ClientSSL | ClientIgnoreSigpipe | ClientTransactions | ClientReserved |
	ClientSecureConnection | ClientMultiStatements | ClientMultiResults | ClientPSMultiResults |
	ClientPluginAuth | ClientConnectAttrs | ClientPluginAuthLenencClientData |
	ClientCanHandleExpiredPasswords | ClientSessionTrack | ClientDeprecateEOF

// Server status flags (SERVER_STATUS_*, SERVER_MORE_RESULTS_EXISTS, ...).
const (
	StatusInTrans            uint16 = 1 << 0
	StatusAutocommit         uint16 = 1 << 1
	StatusMoreResultsExists  uint16 = 1 << 3
	StatusNoGoodIndexUsed    uint16 = 1 << 4
	StatusNoIndexUsed        uint16 = 1 << 5
	StatusCursorExists       uint16 = 1 << 6
	StatusLastRowSent        uint16 = 1 << 7
	StatusDBDropped          uint16 = 1 << 8
	StatusNoBackslashEscapes uint16 = 1 << 9
	StatusMetadataChanged    uint16 = 1 << 10
	StatusQueryWasSlow       uint16 = 1 << 11
	StatusPSOutParams        uint16 = 1 << 12
	StatusInTransReadonly    uint16 = 1 << 13
	StatusSessionStateChange uint16 = 1 << 14
)

// Commands (COM_*).
const (
	ComSleep            byte = 0x00
	ComQuit             byte = 0x01
	ComInitDB           byte = 0x02
	ComQuery            byte = 0x03
	ComFieldList        byte = 0x04
	ComCreateDB         byte = 0x05
	ComDropDB           byte = 0x06
	ComRefresh          byte = 0x07
	ComShutdown         byte = 0x08
	ComStatistics       byte = 0x09
	ComProcessInfo      byte = 0x0a
	ComConnect          byte = 0x0b
	ComProcessKill      byte = 0x0c
	ComDebug            byte = 0x0d
	ComPing             byte = 0x0e
	ComTime             byte = 0x0f
	ComDelayedInsert    byte = 0x10
	ComChangeUser       byte = 0x11
	ComBinlogDump       byte = 0x12
	ComTableDump        byte = 0x13
	ComConnectOut       byte = 0x14
	ComRegisterSlave    byte = 0x15
	ComStmtPrepare      byte = 0x16
	ComStmtExecute      byte = 0x17
	ComStmtSendLongData byte = 0x18
	ComStmtClose        byte = 0x19
	ComStmtReset        byte = 0x1a
	ComSetOption        byte = 0x1b
	ComStmtFetch        byte = 0x1c
	ComDaemon           byte = 0x1d
	ComBinlogDumpGTID   byte = 0x1e
	ComResetConnection  byte = 0x1f
	// NumCommands bounds the command bytes above, for tables indexed by
	// command.
	NumCommands = 0x20
)

var commandNames = [NumCommands]string{
	"COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST", "COM_CREATE_DB",
	"COM_DROP_DB", "COM_REFRESH", "COM_SHUTDOWN", "COM_STATISTICS", "COM_PROCESS_INFO",
	"COM_CONNECT", "COM_PROCESS_KILL", "COM_DEBUG", "COM_PING", "COM_TIME", "COM_DELAYED_INSERT",
	"COM_CHANGE_USER", "COM_BINLOG_DUMP", "COM_TABLE_DUMP", "COM_CONNECT_OUT",
	"COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_STMT_SEND_LONG_DATA",
	"COM_STMT_CLOSE", "COM_STMT_RESET", "COM_SET_OPTION", "COM_STMT_FETCH", "COM_DAEMON",
	"COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION",
}

// CommandName is the protocol's name of a command byte ("COM_QUERY"), or
// "unknown".
func CommandName(c byte) string {
	if int(c) < NumCommands {
		return commandNames[c]
	}
	return "unknown"
}

// Packet headers of responses.
const (
	HeaderOK          byte = 0x00
	HeaderLocalInfile byte = 0xfb
	HeaderEOF         byte = 0xfe
	HeaderErr         byte = 0xff
	// HeaderAuthMoreData precedes caching_sha2_password's and other
	// plugins' extra authentication data.
	HeaderAuthMoreData byte = 0x01
	// HeaderAuthSwitch asks the client to authenticate with another
	// plugin (the same byte as EOF, in the authentication phase).
	HeaderAuthSwitch byte = 0xfe
)

// Authentication plugins.
const (
	NativePassword  = "mysql_native_password"
	CachingSHA2     = "caching_sha2_password"
	ClearPassword   = "mysql_clear_password"
	ScrambleLength  = 20
	MaxPacketLength = 1<<24 - 1
)

// DefaultCollation is utf8mb4_general_ci, which Mecha announces when the
// upstream's is not known.
const DefaultCollation = 45
