/** What the journals of a storage path say (src/engine/journal.ts), for tests of commands that write. */
import { listJournals, readJournal } from '../../src/engine/journal.js';

/** The events of every run that started the action `id`, oldest run first: `[event, action]` pairs. */
export async function runsOfAction(storagePath: string, id: string): Promise<[string, string | null][][]> {
  const runs: [string, string | null][][] = [];
  for (const file of await listJournals(storagePath)) {
    const events = await readJournal(file);
    if (events.some((e) => e.event === 'action_started' && e.action === id)) {
      runs.push(events.filter((e) => !e.event.includes('.')).map((e) => [e.event, typeof e.action === 'string' ? e.action : null]));
    }
  }
  return runs;
}
