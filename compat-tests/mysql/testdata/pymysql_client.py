"""pymysql_client.py drives PyMySQL, unmodified, against a MySQL server.

Usage: pymysql_client.py HOST PORT USER PASSWORD DATABASE

It prints one JSON line per check, [name, value], with values that do not
depend on which server (Mecha or MariaDB directly) it talks to, so that the
two outputs can be compared line by line, and exits non-zero at the first
check that fails. It leaves its tables (py_*) for the caller to inspect.
"""

import datetime
import decimal
import json
import sys
import time

import pymysql
import pymysql.constants.CLIENT
import pymysql.cursors

HOST, PORT, USER, PASSWORD, DB = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def connect(**kw):
    kw.setdefault("charset", "utf8mb4")
    return pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, **kw)


def report(name, value):
    print(json.dumps([name, value], ensure_ascii=False, default=str), flush=True)


def check(name, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (name, got, want))
    report(name, got)


def error_of(fn):
    """Runs fn and returns (exception class name, errno, message)."""
    try:
        fn()
    except pymysql.Error as e:
        return [type(e).__name__, e.args[0], e.args[1] if len(e.args) > 1 else ""]
    raise AssertionError("no error")


conn = connect()
cur = conn.cursor()
report("server_version_prefix", conn.get_server_info().split("-")[0])
check("autocommit_default", conn.get_autocommit(), False)
cur.execute("SELECT DATABASE(), @@character_set_client, @@collation_connection")
check("session", list(cur.fetchone()), [DB, "utf8mb4", "utf8mb4_general_ci"])

# Parameters of every kind, quoted by PyMySQL into the query text.
cur.execute("CREATE OR REPLACE TABLE py_items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) CHARACTER SET utf8mb4, "
            "price DECIMAL(10,2), data BLOB, created DATETIME(6), day DATE, flag BOOL, nothing INT NULL) ENGINE=InnoDB")
values = [
    ("Zoë 😀 'quoted' \\back\\ \"dq\"", decimal.Decimal("12.34"), bytes(range(256)),
     datetime.datetime(2024, 2, 29, 23, 59, 58, 123456), datetime.date(1999, 12, 31), True, None),
    ("中文", decimal.Decimal("-0.01"), b"", datetime.datetime(1970, 1, 1), datetime.date(2000, 1, 1), False, None),
]
for v in values:
    cur.execute("INSERT INTO py_items (name, price, data, created, day, flag, nothing) VALUES (%s, %s, %s, %s, %s, %s, %s)", v)
    report("insert_rowcount", cur.rowcount)
check("lastrowid", cur.lastrowid, 2)
conn.commit()
cur.execute("SELECT name, price, data, created, day, flag, nothing FROM py_items WHERE id >= %s ORDER BY id", (1,))
rows = cur.fetchall()
check("select_roundtrip", [tuple(r) for r in rows] == [(n, p, d, c, day, int(f), x) for (n, p, d, c, day, f, x) in values], True)
report("select_rows", [[repr(c) for c in r] for r in rows])
check("description", [d[0] for d in cur.description], ["name", "price", "data", "created", "day", "flag", "nothing"])

dcur = conn.cursor(pymysql.cursors.DictCursor)
dcur.execute("SELECT id, name FROM py_items WHERE name = %(name)s", {"name": "中文"})
check("dict_cursor", dcur.fetchall(), [{"id": 2, "name": "中文"}])

# Transactions: PyMySQL starts with autocommit off.
other = connect(autocommit=True)
ocur = other.cursor()
cur.execute("CREATE OR REPLACE TABLE py_tx (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
conn.begin()
cur.execute("INSERT INTO py_tx VALUES (1, 'gone'), (2, 'gone')")
cur.execute("SELECT COUNT(*) FROM py_tx")
check("tx_own_view", cur.fetchone()[0], 2)
ocur.execute("SELECT COUNT(*) FROM py_tx")
check("tx_other_before_rollback", ocur.fetchone()[0], 0)
conn.rollback()
cur.execute("SELECT COUNT(*) FROM py_tx")
check("tx_after_rollback", cur.fetchone()[0], 0)
conn.begin()
cur.execute("INSERT INTO py_tx VALUES (%s, %s)", (3, "kept"))
ocur.execute("SELECT COUNT(*) FROM py_tx")
check("tx_other_before_commit", ocur.fetchone()[0], 0)
conn.commit()
ocur.execute("SELECT id, v FROM py_tx")
check("tx_other_after_commit", [list(r) for r in ocur.fetchall()], [[3, "kept"]])

# executemany: INSERT ... VALUES is batched into multi-row statements;
# UPDATE runs once per row.
cur.execute("CREATE OR REPLACE TABLE py_many (id INT PRIMARY KEY, v VARCHAR(40), n INT) ENGINE=InnoDB")
n = cur.executemany("INSERT INTO py_many (id, v, n) VALUES (%s, %s, %s)", [(i, "many-%d-é" % i, i % 10) for i in range(5000)])
check("executemany_insert", n, 5000)
n = cur.executemany("UPDATE py_many SET n = n + %s WHERE id = %s", [(100, i) for i in range(0, 5000, 50)])
check("executemany_update", n, 100)
conn.commit()
cur.execute("SELECT COUNT(*), SUM(n) FROM py_many")
check("executemany_result", [int(x) for x in cur.fetchone()], [5000, 5 * 4500 + 100 * 100])

# A server-side (unbuffered) cursor over 100k rows, streamed.
cur.execute("CREATE OR REPLACE TABLE py_big (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB")
cur.execute("INSERT INTO py_big SELECT seq, CONCAT('row-', seq, '-', REPEAT('x', seq % 17)) FROM seq_1_to_100000")
check("big_inserted", cur.rowcount, 100000)
conn.commit()
ss = conn.cursor(pymysql.cursors.SSCursor)
ss.execute("SELECT id, v FROM py_big ORDER BY id")
count, total, ordered = 0, 0, True
for rid, v in ss:
    count += 1
    total += rid
    if rid != count or v != "row-%d-%s" % (rid, "x" * (rid % 17)):
        ordered = False
check("sscursor_rows", count, 100000)
check("sscursor_sum", total, 100000 * 100001 // 2)
check("sscursor_in_order", ordered, True)
ss.close()
# Leaving an unbuffered result half-read: close() drains it and the
# connection goes on.
ss = conn.cursor(pymysql.cursors.SSDictCursor)
ss.execute("SELECT id, v FROM py_big WHERE id > 50000 ORDER BY id DESC")
check("ssdict_first", ss.fetchmany(3), [{"id": 100000 - i, "v": "row-%d-%s" % (100000 - i, "x" * ((100000 - i) % 17))} for i in range(3)])
ss.close()
cur.execute("SELECT COUNT(*) FROM py_big WHERE id %% 2 = %s", (0,))
check("after_partial_stream", cur.fetchone()[0], 50000)

# Errors keep their errno and message.
cur.execute("CREATE OR REPLACE TABLE py_err (id INT PRIMARY KEY)")
cur.execute("INSERT INTO py_err VALUES (1)")
check("duplicate_key", error_of(lambda: cur.execute("INSERT INTO py_err VALUES (%s)", (1,))),
      ["IntegrityError", 1062, "Duplicate entry '1' for key 'PRIMARY'"])
check("no_such_table", error_of(lambda: cur.execute("SELECT * FROM py_nope")),
      ["ProgrammingError", 1146, "Table '%s.py_nope' doesn't exist" % DB])
check("syntax", error_of(lambda: cur.execute("SELEC 1"))[:2], ["ProgrammingError", 1064])
check("out_of_range", error_of(lambda: cur.execute("SELECT CAST(%s AS UNSIGNED) + 18446744073709551615", ("1",)))[:2],
      ["OperationalError", 1690])
cur.execute("SELECT 'still usable'")
check("after_errors", cur.fetchone()[0], "still usable")
conn.rollback()

# Multi-statements and a procedure with an OUT parameter (callproc).
multi = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, autocommit=True)
mcur = multi.cursor()
mcur.execute("SELECT 1 AS a; SELECT 'two', 2; UPDATE py_tx SET v = 'multi'; SELECT v FROM py_tx")
sets = [mcur.fetchall()]
while mcur.nextset():
    sets.append(mcur.fetchall())
check("multi_statement_sets", [[list(r) for r in s] for s in sets], [[[1]], [["two", 2]], [], [["multi"]]])
mcur.execute("CREATE OR REPLACE PROCEDURE py_proc(IN a INT, OUT b INT) BEGIN SELECT a * 2 AS doubled; SET b = a + 1; END")
mcur.callproc("py_proc", (20, 0))
check("callproc_result", [list(r) for r in mcur.fetchall()], [[40]])
while mcur.nextset():
    pass
mcur.execute("SELECT @_py_proc_1")
check("callproc_out", mcur.fetchone()[0], 21)

# Other commands: COM_PING, COM_INIT_DB.
conn.ping(reconnect=False)
report("ping", "ok")
conn.select_db("information_schema")
cur.execute("SELECT DATABASE()")
check("select_db", cur.fetchone()[0], "information_schema")
conn.select_db(DB)

# A large value as a parameter (escaped into a 5 MB query).
blob = bytes(range(256)) * (4 << 12) + b"end"
cur.execute("CREATE OR REPLACE TABLE py_large (id INT PRIMARY KEY, b LONGBLOB)")
cur.execute("INSERT INTO py_large VALUES (1, %s)", (blob,))
conn.commit()
cur.execute("SELECT b, LENGTH(b) FROM py_large WHERE id = 1")
b, length = cur.fetchone()
check("large_value", [length, b == blob], [(4 << 20) + 3, True])

# COM_PROCESS_KILL with the connection id the server announced at login
# (PyMySQL's thread_id()): the victim's session ends.
victim = connect(autocommit=True)
vcur = victim.cursor()
vcur.execute("SELECT CONNECTION_ID()")
victim_session = vcur.fetchone()[0]
conn.kill(victim.thread_id())
gone = False
for _ in range(100):
    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (victim_session,))
    if cur.fetchone()[0] == 0:
        gone = True
        break
    time.sleep(0.05)
check("kill_ends_session", gone, True)
err = error_of(lambda: vcur.execute("SELECT 1"))
report("killed_connection_error_class", err[0])
check("kill_unknown_thread", error_of(lambda: conn.kill(999999999)), ["OperationalError", 1094, "Unknown thread id: 999999999"])

# Reconnect-style use: close and open again many times.
for i in range(50):
    c = connect(autocommit=True)
    k = c.cursor()
    k.execute("SELECT %s + 1", (i,))
    if k.fetchone()[0] != i + 1:
        raise AssertionError("reconnect %d" % i)
    c.close()
report("reconnects", 50)

conn.close()
other.close()
multi.close()
report("done", True)
