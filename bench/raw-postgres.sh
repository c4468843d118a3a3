# Sourced by the benchmarks: `raw CMD…` runs a bare PostgreSQL tool with the libpq variables
# (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) of $JARVIS_PG_URL, the sandbox's URL, so the
# baseline reaches the same server without the password on a command line or in the output.
# Call `raw_postgres_env` again after JARVIS_PG_URL changes.
raw_postgres_env() {
  RAW_ENV="$(node -e '
    const u = new URL(process.env.JARVIS_PG_URL);
    const q = (s) => "\x27" + s.replace(/\x27/g, "\x27\\\x27\x27") + "\x27";
    console.log(`PGHOST=${u.hostname} PGPORT=${u.port} PGUSER=${q(decodeURIComponent(u.username))} PGPASSWORD=${q(decodeURIComponent(u.password))} PGDATABASE=${q(decodeURIComponent(u.pathname.slice(1)))}`);
  ')"
}
raw() { eval "env $RAW_ENV \"\$@\""; }
