// node-postgres through splitpool or directly: prints "key<TAB>value" lines for test_drivers.py to compare.
// Usage: NODE_PATH=.../node_modules node node_check.js PORT DATABASE TABLE
const { Client } = require('pg');

const [port, database, table] = process.argv.slice(2);
const out = (key, value) => console.log(`${key}\t${value}`);

async function main() {
  const c = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database,
                         application_name: 'node_check' });
  await c.connect();
  // Transactions: a named INSERT reused in each (Parse once per node, Bind later), then a read of it.
  for (let i = 1; i <= 5; i++) {
    await c.query('BEGIN');
    await c.query({ name: 'ins', text: `insert into ${table} values ($1, $2)`, values: [i, `v${i}`] });
    const r = await c.query(`select count(*)::int as n, inet_server_port() as p from ${table} where k >= $1`, [1]);
    out(`tx${i}.count`, r.rows[0].n);
    out(`tx${i}.port`, r.rows[0].p);
    await c.query('COMMIT');
  }
  // A simple-protocol multi-statement transaction, then a parameterised read of it.
  await c.query(`BEGIN; insert into ${table} values (200, 'm'); `);
  const m = await c.query({ name: 'cnt', text: `select count(*)::int as n, inet_server_port() as p from ${table} where k = $1`, values: [200] });
  out('multi.count', m.rows[0].n);
  out('multi.port', m.rows[0].p);
  await c.query('COMMIT');
  // An error aborts the transaction until its ROLLBACK.
  await c.query('BEGIN');
  try { await c.query('select 1/0'); } catch (e) { out('error.state', e.code); }
  try { await c.query({ name: 'cnt', text: `select count(*)::int as n, inet_server_port() as p from ${table} where k = $1`, values: [1] }); }
  catch (e) { out('error.after', e.code); }
  await c.query('ROLLBACK');
  // Autocommit: reads are balanced; a SET reaches whichever node answers; the named read is reused.
  await c.query("set statement_timeout = '43s'");
  for (let i = 0; i < 8; i++) {
    const r = await c.query(`select current_setting('statement_timeout') as t, current_setting('application_name') as a,
                             inet_server_port() as p, $1::int as i`, [i]);
    out(`auto${i}.settings`, `${r.rows[0].t},${r.rows[0].a},${r.rows[0].i}`);
    out(`auto${i}.port`, r.rows[0].p);
  }
  const seeded = await c.query({ name: 'cnt', text: `select count(*)::int as n, inet_server_port() as p from ${table} where k = $1`, values: [-1] });
  out('seeded.count', seeded.rows[0].n);
  out('seeded.port', seeded.rows[0].p);
  await c.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
