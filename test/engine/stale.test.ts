/** Naming what changed between a saved plan's basis and the current one (pure). */
import t from 'tap';
import { describeBasisChange } from '../../src/engine/stale.js';

const basis = (configHash: string, modules: Record<string, unknown>) => ({ configHash, modules });

t.test('an unchanged basis has nothing to say', async (t) => {
  t.same(describeBasisChange(basis('h', { backup: { backups: ['a', 'b'] } }), basis('h', { backup: { backups: ['a', 'b'] } })), []);
});

t.test('a changed config is named', async (t) => {
  t.same(describeBasisChange(basis('h1', {}), basis('h2', {})), ['the config file or one of its policy files changed']);
});

t.test('backups that appeared or went are named by id', async (t) => {
  const out = describeBasisChange(basis('h', { backup: { backups: ['20261123T030000Z-aaaa'] } }), basis('h', { backup: { backups: ['20261124T030000Z-bbbb'] } }));
  t.same(out, ['backup: backups (new: 20261124T030000Z-bbbb; gone: 20261123T030000Z-aaaa)']);
});

t.test('long lists are cut with a count; scalars show before and after; modules that appear or go are named', async (t) => {
  const many = Array.from({ length: 8 }, (_, i) => `m${i}`);
  t.same(describeBasisChange(basis('h', { migrate: { applied: [] } }), basis('h', { migrate: { applied: many } })), ['migrate: applied (new: m0, m1, m2, m3, m4 and 3 more)']);
  t.same(describeBasisChange(basis('h', { retention: { cutoff: 'x' } }), basis('h', { retention: { cutoff: 'y' } })), ['retention: cutoff ("x" → "y")']);
  t.same(describeBasisChange(basis('h', {}), basis('h', { health: null })), ['health: takes part now but did not when the plan was made']);
  t.same(describeBasisChange(basis('h', { health: null }), basis('h', {})), ['health: took part when the plan was made but does not now']);
});
