// pgjdbc through splitpool or directly: prints "key<TAB>value" lines for test_drivers.py to compare.
// Usage: java -cp postgresql.jar JdbcCheck.java PORT DATABASE TABLE [URL_OPTIONS, e.g. &autosave=always]
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Arrays;

public class JdbcCheck {
    static void out(String key, Object value) { System.out.println(key + "\t" + value); }

    public static void main(String[] args) throws Exception {
        String table = args[2];
        // prepareThreshold=3: from the third execution pgjdbc uses a named server-side statement.
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1]
                + "?user=postgres&sslmode=disable&prepareThreshold=3&ApplicationName=jdbc_check"
                + (args.length > 3 ? args[3] : "");
        try (Connection c = DriverManager.getConnection(url)) {
            // Transactions: a parameterised INSERT, then a read that must see it (so: on the primary).
            c.setAutoCommit(false);
            PreparedStatement ins = c.prepareStatement("insert into " + table + " values (?, ?)");
            PreparedStatement cnt = c.prepareStatement("select count(*), inet_server_port() from " + table + " where k >= ?");
            for (int i = 1; i <= 6; i++) {
                ins.setInt(1, i);
                ins.setString(2, "v" + i);
                ins.executeUpdate();
                cnt.setInt(1, 1);
                try (ResultSet rs = cnt.executeQuery()) {
                    rs.next();
                    out("tx" + i + ".count", rs.getInt(1));
                    out("tx" + i + ".port", rs.getInt(2));
                }
                c.commit();
            }
            // A batch (several Parse/Bind/Execute before one Sync), then a read in the same transaction.
            PreparedStatement batch = c.prepareStatement("insert into " + table + " values (?, ?)");
            for (int i = 100; i < 110; i++) {
                batch.setInt(1, i);
                batch.setString(2, "b");
                batch.addBatch();
            }
            out("batch.result", Arrays.toString(batch.executeBatch()));
            try (ResultSet rs = c.createStatement().executeQuery("select count(*), inet_server_port() from " + table)) {
                rs.next();
                out("batch.count", rs.getInt(1));
                out("batch.port", rs.getInt(2));
            }
            c.commit();
            // An error aborts the transaction until its ROLLBACK, which undoes its write; the next
            // transaction writes, so its read is the primary's (a read before any write may be stale).
            c.createStatement().execute("insert into " + table + " values (300, 'undone')");
            try { c.createStatement().execute("select 1/0"); } catch (SQLException e) { out("error.state", e.getSQLState()); }
            try { c.createStatement().execute("select 1"); } catch (SQLException e) { out("error.after", e.getSQLState()); }
            c.rollback();
            c.createStatement().execute("insert into " + table + " values (301, 'kept')");
            try (ResultSet rs = c.createStatement().executeQuery(
                    "select count(*), inet_server_port() from " + table + " where k in (300, 301)")) {
                rs.next();
                out("txafter.count", rs.getInt(1));
                out("txafter.port", rs.getInt(2));
            }
            c.commit();
            // Autocommit: reads are balanced; a SET reaches whichever node answers.
            c.setAutoCommit(true);
            c.createStatement().execute("set statement_timeout = '42s'");
            PreparedStatement r = c.prepareStatement(
                    "select current_setting('statement_timeout'), current_setting('application_name'), inet_server_port(), ?::int");
            for (int i = 0; i < 8; i++) {
                r.setInt(1, i);
                try (ResultSet rs = r.executeQuery()) {
                    rs.next();
                    out("auto" + i + ".settings", rs.getString(1) + "," + rs.getString(2) + "," + rs.getInt(4));
                    out("auto" + i + ".port", rs.getInt(3));
                }
            }
            // A cursor-style fetch (setFetchSize: Execute with a row limit, then Execute of the same
            // portal in later round trips): all of it from the node that bound it, in a transaction
            // that read only (balanced) and in one that wrote first (the primary, its own rows too).
            c.setAutoCommit(false);  // a fetch size takes effect inside a transaction only
            for (String kind : new String[] {"fetchread", "fetchwrite"}) {
                if (kind.equals("fetchwrite")) c.createStatement().execute("insert into " + table + " values (400, 'w')");
                PreparedStatement f = c.prepareStatement(
                        "select g, inet_server_port(), (select count(*) from " + table + " where k = 400) from generate_series(1, 25) g");
                f.setFetchSize(4);
                int rows = 0, sum = 0, mine = 0;
                java.util.Set<Integer> seen = new java.util.TreeSet<>();
                try (ResultSet rs = f.executeQuery()) {
                    while (rs.next()) { rows++; sum += rs.getInt(1); seen.add(rs.getInt(2)); mine = rs.getInt(3); }
                }
                out(kind + ".rows", rows + "," + sum + "," + seen.size() + "," + (kind.equals("fetchwrite") ? mine : ""));
                out(kind + ".port", seen.iterator().next());
                c.commit();
            }
            // The savepoint API: a write rolled back to a savepoint is gone, the one before it stays.
            c.createStatement().execute("insert into " + table + " values (600, 'kept')");
            java.sql.Savepoint sp = c.setSavepoint();
            c.createStatement().execute("insert into " + table + " values (601, 'undone')");
            c.rollback(sp);
            try (ResultSet rs = c.createStatement().executeQuery(
                    "select count(*), inet_server_port() from " + table + " where k in (600, 601)")) {
                rs.next();
                out("txsavepoint.count", rs.getInt(1));
                out("txsavepoint.port", rs.getInt(2));
            }
            c.commit();
            // SERIALIZABLE as the session's default (SET SESSION CHARACTERISTICS): reads on the primary.
            c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
            try (ResultSet rs = c.createStatement().executeQuery(
                    "select current_setting('transaction_isolation'), inet_server_port()")) {
                rs.next();
                out("serializable.level", rs.getString(1));
                out("serializable.port", rs.getInt(2));
            }
            c.commit();
            c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
            // A read-only transaction of the seeded rows (they are on every node).
            c.setReadOnly(true);
            try (ResultSet rs = c.createStatement().executeQuery("select count(*), inet_server_port() from " + table + " where k < 0")) {
                rs.next();
                out("readonly.count", rs.getInt(1));
                out("readonly.port", rs.getInt(2));
            }
            c.commit();
        }
        // autosave=always: a SAVEPOINT before each statement, ROLLBACK TO it after an error, so the
        // transaction goes on. It reads (balanced), writes (the primary joins with the savepoints),
        // fails, and reads its write after pgjdbc's automatic ROLLBACK TO.
        try (Connection c = DriverManager.getConnection(url + "&autosave=always")) {
            c.setAutoCommit(false);
            try (ResultSet rs = c.createStatement().executeQuery("select count(*) from " + table + " where k < 0")) {
                rs.next();
                out("autosave.seed", rs.getInt(1));
            }
            c.createStatement().execute("insert into " + table + " values (500, 'autosave')");
            try { c.createStatement().execute("select 1/0"); } catch (SQLException e) { out("autosave.error", e.getSQLState()); }
            try (ResultSet rs = c.createStatement().executeQuery(
                    "select count(*), inet_server_port() from " + table + " where k = 500")) {
                rs.next();
                out("autosave.count", rs.getInt(1));
                out("txautosave.port", rs.getInt(2));
            }
            c.commit();
        }
    }
}
