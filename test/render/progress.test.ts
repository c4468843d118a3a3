/**
 * Progress on long work (src/render/progress.ts): how far, how fast, how long to go (pure);
 * off a terminal a line every few seconds; on a real terminal (tmux, capture-pane) a bar with the
 * percentage, rate and ETA while `init --seed` runs on the sandbox, and nothing of it with --json.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { progressMaker, progressSummary } from '../../src/render/progress.js';
import { configFile, newDatabaseUrl, pgServer, PROJECT_MIGRATIONS } from '../migrate/fixture.js';

const BIN = new URL('../../bin/jarvis-db.js', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('the summary: percent, counts, rate and ETA; the count and rate without a total; no ETA before a rate', async (t) => {
  t.equal(progressSummary(250, 1000, 2000), '25% (250 of 1,000), 125/s, ETA 6.0s');
  t.equal(progressSummary(3, 10, 2000), '30% (3 of 10), 1.5/s, ETA 4.7s');
  t.equal(progressSummary(5000, undefined, 1000), '5,000, 5,000/s');
  t.equal(progressSummary(10, 100, 100), '10% (10 of 100)', 'too early for a rate');
  t.equal(progressSummary(100, 100, 1000), '100% (100 of 100), 100/s', 'done: no ETA');
});

t.test('off a terminal: a progress line every interval while it moves, none while it stands still, none after stop', async (t) => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof process.stderr.write;
  try {
    const sink = (await progressMaker(false, { JARVIS_DB_PROGRESS_INTERVAL_MS: '100' }))('copy x');
    sink.update(10, 100);
    await sleep(250);
    sink.update(40, 100);
    await sleep(150);
    const moving = lines.length;
    await sleep(250);
    t.equal(lines.length, moving, 'nothing new while it stands still');
    sink.stop();
    sink.update(90, 100);
    await sleep(250);
    t.equal(lines.length, moving, 'nothing after stop');
  } finally {
    process.stderr.write = write;
  }
  t.ok(lines.length >= 2, lines.join(''));
  t.match(lines[0], /^copy x: 10% \(10 of 100\)/);
  t.match(lines.at(-1), /^copy x: 40% \(40 of 100\), [\d.]+\/s, ETA /);
});

t.test('on a terminal: init --seed shows a bar with percent, rate and ETA; with --json nothing of it', async (t) => {
  if (spawnSync('tmux', ['-V']).error) return t.fail('tmux is missing (Debian: apt-get install tmux; .ci/run installs it)');
  const server = await pgServer(t);
  const capture = async (args: string[], until: RegExp, timeoutMs: number): Promise<string[]> => {
    const db = newDatabaseUrl(t, server, 'progress');
    const config = await configFile(t.testdir(), PROJECT_MIGRATIONS);
    const session = `jarvis-progress-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    const command = `JARVIS_PG_URL='${db.url}' JARVIS_DB_CONFIG='${config}' '${process.execPath}' '${BIN}' ${args.join(' ')}; echo EXITED $?; sleep 60`;
    const started = spawnSync('tmux', ['new-session', '-d', '-s', session, '-x', '220', '-y', '50', command], { encoding: 'utf8' });
    t.equal(started.status, 0, started.stderr);
    t.teardown(() => { spawnSync('tmux', ['kill-session', '-t', session]); });
    const seen: string[] = [];
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const pane = spawnSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' }).stdout;
      seen.push(pane);
      if (until.test(pane)) break;
      await sleep(100);
    }
    return seen;
  };
  const bar = /seed \[[█░]+\] \d+% \(\d+ of \d+\)(, [\d.,]+\/s(, ETA [\d.]+(ms|s))?)?/;
  const withBar = await capture(['init', '--seed', '--scale', '0.05'], /EXITED \d+/, 240_000);
  t.ok(withBar.some((pane) => bar.test(pane)), `a bar was on the terminal: ${withBar.filter((p) => p.includes('seed')).at(-1)}`);
  t.ok(withBar.some((pane) => /ETA [\d.]+(ms|s)/.test(pane)), 'with an ETA');
  t.match(withBar.at(-1), /EXITED 0/);

  const json = await capture(['init', '--seed', '--scale', '0.05', '--json'], /EXITED \d+/, 240_000);
  t.notOk(json.some((pane) => /seed \[|seed: /.test(pane)), 'no progress with --json');
  t.match(json.at(-1), /EXITED 0/);
});
