/**
 * The backup module's words for a change of its config, the schedules (`describeChange`,
 * docs/architecture.md §1): one subject per schedule, every field compared.
 */
import { fieldChanges, type FieldVocabulary } from '../config/changes.js';
import type { Desired } from '../config/types.js';
import type { ConfigChange } from '../engine/types.js';

const SCHEDULE_FIELDS: FieldVocabulary = {
  name: { ignore: true },
  // Its position in the YAML moves when another schedule is added or removed.
  path: { ignore: true },
  cron: {},
  timezone: {},
  service: {},
  'keep.last': {},
  'keep.hourly': {},
  'keep.daily': {},
  'keep.weekly': {},
  'keep.monthly': {},
  'keep.yearly': {},
  'keep.within': {},
  verify: {},
  format: {},
  jobs: {},
  compression: {},
  method: {},
  allowPruneLast: {
    words: (before, after) => (Boolean(before) === Boolean(after) ? null
      : after ? { text: 'allowPruneLast turned on (the last valid backup may be pruned)', destructive: true } : { text: 'allowPruneLast turned off' }),
  },
};

export function describeScheduleChanges(base: Desired, head: Desired): ConfigChange[] {
  const before = new Map(base.backups.map((s) => [s.name, s]));
  const out: ConfigChange[] = [];
  for (const schedule of head.backups) {
    const old = before.get(schedule.name);
    if (!old) out.push({ subject: schedule.name, text: `new backup schedule (${schedule.service}, \`${schedule.cron}\` ${schedule.timezone})` });
    else for (const change of fieldChanges(old, schedule, SCHEDULE_FIELDS)) out.push({ subject: schedule.name, ...change });
  }
  const after = new Set(head.backups.map((s) => s.name));
  for (const name of before.keys()) {
    if (!after.has(name)) out.push({ subject: name, text: 'backup schedule removed (its backups stay, and are no longer pruned)' });
  }
  return out;
}
