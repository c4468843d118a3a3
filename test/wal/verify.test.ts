/**
 * Verifying the archived WAL (verifyWalArchive in src/wal/archive.ts, behind `backup verify`) on a
 * local repository without a server: every file read end to end through the fetch path into no
 * file; a flipped byte names the segment and the repository; from a base backup's start only what
 * its recovery replays; a missing segment breaks the chain. The CLI on a real base backup is in
 * test/wal/prune-pitr.test.ts.
 */
import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openRepositories } from '../../src/storage/repositories.js';
import { verifyWalArchive, walStore } from '../../src/wal/archive.js';
import { walFileName, walKey } from '../../src/wal/segments.js';
import { LAST, lsnIn, seg, setup } from './fixture.js';

async function flipByte(storage: string, name: string): Promise<void> {
  const item = join(storage, 'wal', name.slice(0, 8), name);
  const stored = (await readdir(item)).find((f) => f !== 'segment.json')!;
  const bytes = await readFile(join(item, stored));
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await writeFile(join(item, stored), bytes);
}

t.test('the whole archive verifies: every file read, the raw bytes counted; nothing written beside it', async (t) => {
  const dir = t.testdir();
  const { desired } = await setup(dir);
  const [repository] = openRepositories(desired);
  const seen: string[] = [];
  const r = await verifyWalArchive(desired, repository!, { onFile: (name) => seen.push(name) });
  t.same([r.ok, r.files, r.from, r.damaged, r.gaps], [true, LAST + 2, null, [], []]);
  t.ok(r.bytes >= LAST * 1024 * 1024, 'the raw bytes of every segment');
  t.equal(seen.length, LAST + 2);
  t.same((await readdir(dir)).filter((n) => n.startsWith('.')), [], 'no temporary file');
});

t.test('a flipped byte in an archived segment is reported naming the segment and the repository; the others still verify', async (t) => {
  const dir = t.testdir();
  const { desired } = await setup(dir);
  await flipByte(join(dir, 'backups'), seg(7));
  const r = await verifyWalArchive(desired, openRepositories(desired)[0]!);
  t.equal(r.ok, false);
  t.equal(r.files, LAST + 2, 'every file is still read');
  t.same(r.damaged.map((d) => d.name), [seg(7)]);
  t.match(r.damaged[0]!.problem, `${seg(7)} in repository local is damaged`);
});

t.test('from a base backup: its timeline from the segment of its start on, later timelines and their history; a gap there breaks the chain', async (t) => {
  const dir = t.testdir();
  const { desired } = await setup(dir);
  const repository = openRepositories(desired)[0]!;
  const seen: string[] = [];
  const r = await verifyWalArchive(desired, repository, { from: { timeline: 1, startLsn: lsnIn(9) }, onFile: (name) => seen.push(name) });
  t.equal(r.from, seg(9));
  t.same(seen, [seg(9), seg(10), seg(11), seg(12), '00000002.history'], 'the WAL its recovery replays, and the history of the later timeline');
  t.equal(r.ok, true);

  // A damaged segment before the base backup's start is not its business.
  await flipByte(join(dir, 'backups'), seg(4));
  t.equal((await verifyWalArchive(desired, repository, { from: { timeline: 1, startLsn: lsnIn(9) } })).ok, true);

  await walStore(repository).delete(walKey(walFileName(seg(10))));
  const broken = await verifyWalArchive(desired, repository, { from: { timeline: 1, startLsn: lsnIn(9) } });
  t.equal(broken.ok, false);
  t.same(broken.gaps, [{ from: seg(10), to: seg(10), missing: 1 }]);
});
