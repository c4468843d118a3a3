// The data of the retention benchmarks (bench/retention.mjs, bench/retention-floor.mjs): a
// template database with a `messages` table of the data model, a given number of rows whose created_at spans
// two years in insertion order (half older than 365 days), indexed on created_at and
// conversation_id. Copies of it (CREATE DATABASE ... TEMPLATE) give each side identical data.
import pg from 'pg';

export const mb = (b) => (b / 1e6).toFixed(1);
export const secs = (ms) => (ms / 1000).toFixed(2);

export function databaseUrl(server, db) {
  const u = new URL(server);
  u.pathname = '/' + db;
  return u.toString();
}

export async function query(url, text, values) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(text, values)).rows; } finally { await c.end(); }
}

/** Creates database `bench_template` on the server with `rows` messages; returns the table's size and row counts. */
export async function createMessagesTemplate(server, rows, now) {
  await query(server, `ALTER SYSTEM SET max_wal_size = '4GB'`);
  await query(server, `SELECT pg_reload_conf()`);
  await query(server, `CREATE DATABASE bench_template`);
  const template = databaseUrl(server, 'bench_template');
  console.log(`generating ${rows.toLocaleString('en-US')} messages...`);
  // Messages arrive over two years, oldest first (as a real table fills); half are older than a year.
  await query(template, `
    CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, display_name text,
      created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), last_active_at timestamptz NOT NULL DEFAULT now(), anonymized_at timestamptz);
    CREATE TABLE conversations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
      title text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
    CREATE TABLE messages (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, conversation_id bigint NOT NULL REFERENCES conversations ON DELETE CASCADE,
      role text NOT NULL, content text NOT NULL, tokens integer, metadata jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL);
    CREATE TABLE lorem (t text);
    INSERT INTO lorem SELECT string_agg(w, ' ') FROM (SELECT (ARRAY['the','assistant','user','asked','about','weather','schedule','meeting','reminder','email','project','deadline','summary','please','thanks','could','you','help','with','this','that','code','review','function','error','database','backup','restore','memory','context','jarvis','today','tomorrow','call','notes','list','open','close','update','plan'])[1 + (random()*39)::int] AS w FROM generate_series(1, 3000)) s;
    INSERT INTO users (email) SELECT 'user' || i || '@example.com' FROM generate_series(1, 1000) i;
    INSERT INTO conversations (user_id, title, created_at, updated_at) SELECT 1 + i % 1000, 'conversation ' || i, $1::timestamptz - interval '730 days', $1::timestamptz FROM generate_series(1, ${Math.max(1, Math.round(rows / 20))}) i;
    INSERT INTO messages (conversation_id, role, content, tokens, metadata, created_at)
      SELECT 1 + i % ${Math.max(1, Math.round(rows / 20))}, (ARRAY['user','assistant','system','tool'])[1 + i % 4], substr(l.t, 1 + ((i::bigint * 7919) % 15000)::int, 60 + (i * 13) % 240),
             (i * 13) % 400, CASE WHEN i % 10 = 0 THEN jsonb_build_object('model', 'm' || i % 3, 'latency_ms', i % 900) ELSE '{}' END,
             $1::timestamptz - interval '730 days' + (i::float8 / ${rows}) * interval '730 days' - interval '1 second'
        FROM generate_series(1, ${rows}) i, lorem l;
    DROP TABLE lorem;
    CREATE INDEX ON messages (created_at); CREATE INDEX ON messages (conversation_id); CREATE INDEX ON conversations (updated_at);`.replaceAll('$1', `'${now.toISOString()}'`));
  await query(template, 'VACUUM ANALYZE');
  await query(template, 'CHECKPOINT');
  const [size] = await query(template, `SELECT pg_table_size('messages')::float8 AS heap, pg_total_relation_size('messages')::float8 AS total, count(*) FILTER (WHERE created_at < $1::timestamptz - interval '365 days')::int AS eligible, count(*)::int AS rows FROM messages`, [now.toISOString()]);
  console.log(`messages: ${size.rows.toLocaleString('en-US')} rows, ${size.eligible.toLocaleString('en-US')} older than 365d; table ${mb(size.heap)} MB, with indexes ${mb(size.total)} MB`);
  return size;
}
