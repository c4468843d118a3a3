/** pg_restore -v's stderr as progress: one count per TOC item, a note naming what starts. */
import t from 'tap';
import { countTocEntries, parseRestoreLine, RestoreProgress } from '../../../src/backup/postgres/restore-progress.js';

t.test('the total is the TOC entries pg_restore -l lists, without its comment lines and header items', async (t) => {
  t.equal(countTocEntries(';\n; Archive created at 2026-11-24\n;\n3498; 0 0 ENCODING - ENCODING\n228; 1259 16440 TABLE public messages jarvis\n3490; 0 16440 TABLE DATA public messages jarvis\n'), 2);
});

t.test('the header items are named but not counted: the count never runs ahead of the work', async (t) => {
  const seen: string[] = [];
  const progress = new RestoreProgress(2, (note, done, total) => seen.push(`${note} ${done}/${total}`));
  for (const line of ['pg_restore: processing item 3331 ENCODING ENCODING', 'pg_restore: processing item 3334 DATABASE jarvis', 'pg_restore: processing item 228 TABLE messages', 'pg_restore: processing item 3490 TABLE DATA messages']) progress.line(line);
  t.same(seen, ['restoring encoding encoding (0/2) 0/2', 'restoring database jarvis (0/2) 0/2', 'restoring table messages (1/2) 1/2', 'restoring table data for messages (2/2) 2/2']);
});

t.test('items run by the leader and by workers each count once; the note names the table whose data is restored', async (t) => {
  const seen: string[] = [];
  const progress = new RestoreProgress(5, (note, done, total) => seen.push(`${note} ${done}/${total}`));
  for (const line of [
    'pg_restore: connecting to database for restore',
    'pg_restore: processing item 228 TABLE messages',
    'pg_restore: creating TABLE "public.messages"',
    'pg_restore: entering main parallel loop',
    'pg_restore: launching item 3490 TABLE DATA messages',
    'pg_restore: processing data for table "public.messages"',
    'pg_restore: launching item 3311 INDEX messages_created_at_idx',
    'pg_restore:pg_restore: finished item 3490 TABLE DATA messages',
    'pg_restore: finished item 3311 INDEX messages_created_at_idx',
    'pg_restore: launching item 3320 FK CONSTRAINT messages messages_conversation_id_fkey',
    'pg_restore: finished item 3320 FK CONSTRAINT messages messages_conversation_id_fkey',
  ]) progress.line(line);
  t.same(seen, [
    'restoring table messages (1/5) 1/5',
    'restoring table data for messages (1/5) 1/5',
    'restoring index messages_created_at_idx (1/5) 1/5',
    'restoring fk constraint messages messages_conversation_id_fkey (3/5) 3/5',
  ]);
  t.equal(parseRestoreLine('pg_restore: creating TABLE "public.messages"'), null, 'the lines that repeat an item do not count it again');
});
