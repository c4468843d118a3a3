/**
 * The migrate module's words for a change of its config, the `schema` section
 * (`describeChange`, docs/architecture.md §1).
 */
import { fieldChanges, type FieldVocabulary } from '../config/changes.js';
import type { Desired } from '../config/types.js';
import type { ConfigChange } from '../engine/types.js';

const SCHEMA_FIELDS: FieldVocabulary = {
  // plan --base adds "moves down" to this change when the head plans down-migrations.
  target: {},
  allowDown: {
    words: (_before, after) => (after ? { text: 'allowDown turned on (down-migrations allowed)', destructive: true } : { text: 'allowDown turned off' }),
  },
  backupBefore: { words: (_before, after) => ({ text: after ? 'a backup before migrations turned on' : 'no backup before migrations any more' }) },
  migrations: { label: 'migrations folder' },
};

export function describeSchemaChanges(base: Desired, head: Desired): ConfigChange[] {
  const a = base.schema;
  const b = head.schema;
  if (!a && b) return [{ subject: 'schema', text: `now managed (target ${b.target})` }];
  if (a && !b) return [{ subject: 'schema', text: 'no longer managed' }];
  if (!a || !b) return [];
  return fieldChanges(a, b, SCHEMA_FIELDS).map((change) => ({ subject: 'schema', ...change }));
}
